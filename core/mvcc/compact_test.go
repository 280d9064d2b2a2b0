package mvcc

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"pgregory.net/rapid"
)

// scanFrom formats the events from rev on, one "TYPE key@rev" each.
func scanFrom(t *testing.T, s *Store, rev Revision) string {
	t.Helper()
	var out []string
	if err := s.ScanEvents(rev, func(ev *mvccpb.Event) bool {
		out = append(out, fmt.Sprintf("%s %s@%d", ev.Type, ev.Kv.Key, ev.Kv.ModRevision))
		return true
	}); err != nil {
		t.Fatalf("scan from %d: %v", rev, err)
	}
	return strings.Join(out, ", ")
}

// TestCompactKeepsTombstoneAtCompactRev: as etcd since 3.5.16 (etcd
// #18089), a compaction keeps a tombstone at its own revision, so that a
// watcher starting there gets the delete; reads, counts and hashes do not
// see it, and the next compaction past it drops it. The physical work, and
// a checkpoint's round trip, change none of that; tests/diff_test.go
// checks the hashes against etcd's.
func TestCompactKeepsTombstoneAtCompactRev(t *testing.T) {
	cases := []struct {
		name    string
		history func(s *Store) // from revision 1 on
		compact Revision
		// wantScan is the events from the compaction revision on.
		wantScan string
		wantKeys int // index entries after compacting
	}{
		{
			name: "deleted at the compaction revision",
			history: func(s *Store) {
				put(s, "k", "1") // 2
				del(s, "k")      // 3
			},
			compact:  3,
			wantScan: "DELETE k@3",
			wantKeys: 1,
		},
		{
			name: "deleted there and put again",
			history: func(s *Store) {
				put(s, "k", "1") // 2
				del(s, "k")      // 3
				put(s, "k", "2") // 4
			},
			compact:  3,
			wantScan: "DELETE k@3, PUT k@4",
			wantKeys: 1,
		},
		{
			name: "a range delete at the compaction revision, one key untouched",
			history: func(s *Store) {
				put(s, "a", "1") // 2
				put(s, "b", "1") // 3
				put(s, "c", "1") // 4
				tx := s.Write()  // 5
				tx.DeleteRange([]byte("a"), []byte("c"))
				tx.End()
			},
			compact:  5,
			wantScan: "DELETE a@5, DELETE b@5",
			wantKeys: 3,
		},
		{
			name: "deleted before the compaction revision",
			history: func(s *Store) {
				put(s, "k", "1") // 2
				del(s, "k")      // 3
				put(s, "j", "1") // 4
			},
			compact:  4,
			wantScan: "PUT j@4",
			wantKeys: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := New()
			tc.history(s)
			wantRange := rangeAt(t, s, tc.compact)
			if err := s.Compact(tc.compact, nil); err != nil {
				t.Fatal(err)
			}
			hash, err := s.Snapshot().HashKV(0)
			if err != nil {
				t.Fatal(err)
			}
			check := func(stage string, s *Store) {
				t.Helper()
				if got := scanFrom(t, s, tc.compact); got != tc.wantScan {
					t.Fatalf("%s: events from %d: %q, want %q", stage, tc.compact, got, tc.wantScan)
				}
				if got := rangeAt(t, s, tc.compact); got != wantRange {
					t.Fatalf("%s: range at %d: %s, before compacting %s", stage, tc.compact, got, wantRange)
				}
				if h, err := s.Snapshot().HashKV(0); err != nil || h != hash {
					t.Fatalf("%s: hash %+v (%v), after the logical compaction %+v", stage, h, err, hash)
				}
			}
			check("logical compaction", s)
			for s.Step(1) {
			}
			check("physical compaction", s)
			if s.Keys() != tc.wantKeys {
				t.Fatalf("%d keys in the index, want %d", s.Keys(), tc.wantKeys)
			}
			checkColdLive(t, s)
			loaded := reloaded(t, s)
			check("checkpoint", loaded)
			if loaded.Keys() != tc.wantKeys {
				t.Fatalf("%d keys in the loaded index, want %d", loaded.Keys(), tc.wantKeys)
			}
			// The next compaction past the tombstone drops it.
			put(s, "z", "1")
			if err := s.Compact(s.Rev(), nil); err != nil {
				t.Fatal(err)
			}
			for s.Step(1) {
			}
			if got := scanFrom(t, s, s.Rev()); got != fmt.Sprintf("PUT z@%d", s.Rev()) {
				t.Fatalf("events from the next compaction: %q", got)
			}
			live, _ := s.Range([]byte("a"), []byte("{"), RangeOptions{CountOnly: true})
			if s.Keys() != live.Count {
				t.Fatalf("after the next compaction %d keys in the index, %d live", s.Keys(), live.Count)
			}
			checkColdLive(t, s)
		})
	}
}

// rangeAt formats every key at rev, with the count and the keys-only
// count.
func rangeAt(t interface {
	Helper()
	Fatal(...any)
}, s *Store, rev Revision) string {
	t.Helper()
	res, err := s.Range([]byte("a"), []byte("{"), RangeOptions{Rev: rev})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := s.Range([]byte("a"), []byte("{"), RangeOptions{Rev: rev, KeysOnly: true, CountOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintf("count %d/%d:", res.Count, keys.Count)
	for _, kv := range res.KVs {
		out += fmt.Sprintf(" %s=%s@%d", kv.Key, kv.Value, kv.ModRevision)
	}
	return out
}

func put(s *Store, key, value string) {
	tx := s.Write()
	tx.Put([]byte(key), []byte(value), 0)
	tx.End()
}

func del(s *Store, key string) {
	tx := s.Write()
	tx.DeleteRange([]byte(key), nil)
	tx.End()
}

// checkColdLive checks, with no physical work pending, that coldLive is
// the footprint of the cold records the index holds.
func checkColdLive(t interface{ Fatalf(string, ...any) }, s *Store) {
	var want int64
	s.tree.Ascend(func(it item) bool {
		for _, r := range s.links.records(it) {
			if recMod(r) <= s.physRev {
				want += recordFootprint(r)
			}
		}
		return true
	})
	if s.coldLive != want {
		t.Fatalf("coldLive %d, the index holds %d bytes of cold records", s.coldLive, want)
	}
}

// TestCompactStepsAreBounded: physical compaction and the cold rewrite do
// about their budget of records per Step, however the history is spread
// over keys (one key with a long history, many keys with some, many keys
// with one revision each), and take as many steps as the records need,
// while writes go on between them. The end state, physical layout
// included, and the hashes are those of the same compaction done in one
// step with the writes after it.
func TestCompactStepsAreBounded(t *testing.T) {
	const budget = 100
	cases := []struct {
		name       string
		keys, revs int
	}{
		{"one key, long history", 1, 3000},
		{"some keys, some history each", 30, 3000},
		{"many keys, one revision each", 3000, 3000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			history := func() *Store {
				s := New()
				for i := range c.revs {
					put(s, fmt.Sprintf("k%05d", i%c.keys), fmt.Sprint(i))
				}
				del(s, "k00000")
				return s
			}
			target := Revision(c.revs - 5)
			during := func(s *Store, i int) { put(s, fmt.Sprintf("k%05d", i%(c.keys+3)), "later") }

			stepped := history()
			if err := stepped.Compact(target, nil); err != nil {
				t.Fatal(err)
			}
			steps := 0
			for ; stepped.Step(budget); steps++ {
				during(stepped, steps)
				checkBackend(t, stepped)
				if err := stepped.CheckInvariants(); err != nil {
					t.Fatalf("after step %d: %v", steps, err)
				}
			}
			// Every record below the target is let go, one unit each.
			if minSteps := (c.revs - c.keys) / budget; steps < minSteps {
				t.Errorf("compacted %d revisions in %d steps of %d records, want at least %d", c.revs, steps, budget, minSteps)
			}

			oneStep := history()
			if err := oneStep.Compact(target, nil); err != nil {
				t.Fatal(err)
			}
			if oneStep.Step(1 << 40) {
				t.Fatal("work left after an unbounded step")
			}
			for i := range steps {
				during(oneStep, i)
			}
			checkColdLive(t, stepped)
			if got, want := physicalState(stepped), physicalState(oneStep); got != want {
				t.Errorf("stepped compaction left\n%s\none step left\n%s", got, want)
			}
			for _, rev := range []Revision{target, 0} {
				got, err1 := stepped.Snapshot().HashKV(rev)
				want, err2 := oneStep.Snapshot().HashKV(rev)
				if err1 != nil || err2 != nil || got != want {
					t.Errorf("HashKV(%d): stepped %+v (%v), one step %+v (%v)", rev, got, err1, want, err2)
				}
			}
		})
	}
}

// TestDefragmentStepsAreBounded: a rewrite of the cold slabs takes steps
// of its budget too, and ends where a one-step rewrite does.
func TestDefragmentStepsAreBounded(t *testing.T) {
	const keys, budget = 2000, 100
	build := func() *Store {
		s := New()
		for i := range 2 * keys {
			put(s, fmt.Sprintf("k%05d", i%keys), fmt.Sprint(i))
		}
		if err := s.Compact(s.Rev(), nil); err != nil {
			t.Fatal(err)
		}
		for s.Step(1 << 40) {
		}
		return s
	}
	stepped, oneStep := build(), build()
	stepped.Defragment(nil)
	oneStep.Defragment(nil)
	steps := 0
	for ; stepped.Step(budget); steps++ {
	}
	if steps < keys/budget-1 {
		t.Errorf("rewrote %d keys in %d steps of %d, want at least %d", keys, steps, budget, keys/budget-1)
	}
	oneStep.Step(1 << 40)
	if got, want := physicalState(stepped), physicalState(oneStep); got != want {
		t.Errorf("stepped rewrite left\n%s\none step left\n%s", got, want)
	}
}

// physicalState formats what physical work leaves behind: every key's
// chain, whether each record is a cold copy, and the store's counters.
func physicalState(s *Store) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rev %d compact %d phys %d hot slabs %d cold %d/%d size %d/%d pending %v\n",
		s.rev, s.compactRev, s.physRev, len(s.hot.slabs), s.coldLive, s.cold.bytes, s.backendInUse, s.backendSize, s.Pending())
	s.tree.Ascend(func(it item) bool {
		b.WriteString(it.key())
		for _, r := range s.links.records(it) {
			h, _, v := decodeRecord(r)
			fmt.Fprintf(&b, " %d.%d=%q", h.mod, h.sub, v)
			if recMod(r) <= s.physRev {
				b.WriteString("(cold)")
			}
		}
		b.WriteByte('\n')
		return true
	})
	return b.String()
}

// TestSteppedMatchesOneStep is metamorphic: two stores take the same
// random history of writes, compactions and defragmentations; one does
// each compaction's and defragmentation's physical work at once, the
// other a random budget at a time while the writes go on. Whatever their
// progress they read the same at every revision still readable, hash the
// same (HashKV, and the compaction hash of each compaction), and once
// the stepped one is done too, their physical state is the same but for
// the modelled file's high-water mark.
func TestSteppedMatchesOneStep(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		oneStep, stepped := New(), New()
		both := func(f func(s *Store)) { f(oneStep); f(stepped) }
		finish := func(s *Store) {
			for s.Step(1 << 40) {
			}
		}
		t.Repeat(map[string]func(*rapid.T){
			"txn": func(t *rapid.T) {
				// etcd refuses a txn that puts a key twice or puts and
				// deletes one: a delete goes alone.
				var ops []modelOp
				for i := range rapid.IntRange(1, 3).Draw(t, "ops") {
					op := genOp(t, fmt.Sprint(i))
					if op.del && len(ops) > 0 || slices.ContainsFunc(ops, func(o modelOp) bool { return o.key == op.key }) {
						break
					}
					if ops = append(ops, op); op.del {
						break
					}
				}
				both(func(s *Store) { writeOps(s, ops) })
			},
			"compact": func(t *rapid.T) {
				rev := Revision(rapid.IntRange(int(oneStep.CompactRev())+1, int(oneStep.Rev())+1).Draw(t, "rev"))
				if rev > oneStep.Rev() {
					t.Skip("nothing to compact")
				}
				both(func(s *Store) {
					if err := s.Compact(rev, nil); err != nil {
						t.Fatalf("compact %d: %v", rev, err)
					}
				})
				// Members hash a view taken as they apply the compaction,
				// whatever physical work is still to do.
				if got, want := stepped.Snapshot().CompactionHash(rev), oneStep.Snapshot().CompactionHash(rev); got != want {
					t.Fatalf("compaction hash at %d: stepped %+v, one step %+v", rev, got, want)
				}
				finish(oneStep)
			},
			"defragment": func(t *rapid.T) {
				both(func(s *Store) { s.Defragment(nil) })
				finish(oneStep)
			},
			"step": func(t *rapid.T) {
				stepped.Step(rapid.IntRange(1, 50).Draw(t, "budget"))
				if err := stepped.CheckInvariants(); err != nil {
					t.Fatal(err)
				}
			},
			"": func(t *rapid.T) {
				for rev := oneStep.CompactRev(); rev <= oneStep.Rev(); rev++ {
					if got, want := rangeAt(t, stepped, rev), rangeAt(t, oneStep, rev); got != want {
						t.Fatalf("at %d, stepped reads %s, one step %s", rev, got, want)
					}
				}
				got, err1 := stepped.Snapshot().HashKV(0)
				want, err2 := oneStep.Snapshot().HashKV(0)
				if err1 != nil || err2 != nil || got != want {
					t.Fatalf("HashKV: stepped %+v (%v), one step %+v (%v)", got, err1, want, err2)
				}
			},
		})
		finish(stepped)
		// The modelled file size is a high-water mark of the records
		// alive at once, which depends on when the physical work went,
		// as etcd's file size does: only the rest must match.
		highWater := regexp.MustCompile(`size (\d+)/\d+`)
		state := func(s *Store) string { return highWater.ReplaceAllString(physicalState(s), "size $1") }
		if got, want := state(stepped), state(oneStep); got != want {
			t.Fatalf("stepped left\n%s\none step left\n%s", got, want)
		}
	})
}
