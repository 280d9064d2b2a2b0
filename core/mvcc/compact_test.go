package mvcc

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
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
			var buf bytes.Buffer
			if _, err := s.Snapshot().WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			loaded, _, err := Load(buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
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
func rangeAt(t *testing.T, s *Store, rev Revision) string {
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
		for _, r := range it.records() {
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
