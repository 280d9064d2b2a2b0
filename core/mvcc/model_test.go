package mvcc

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"pgregory.net/rapid"
)

// modelKV is one key's state in the naive model.
type modelKV struct {
	value                   string
	create, mod, ver, lease int64
}

// model is the obviously correct key space: a full copy of the state at
// every revision.
type model struct {
	states  []map[string]modelKV // states[rev]
	compact int64
}

func newModel() *model {
	return &model{states: []map[string]modelKV{nil, {}}, compact: -1}
}

func (m *model) rev() int64 { return int64(len(m.states) - 1) }

func inRange(k, key, end string, hasEnd bool) bool {
	if !hasEnd {
		return k == key
	}
	if end == "" {
		return k >= key
	}
	return k >= key && k < end
}

type modelOp struct {
	del    bool
	key    string
	end    string
	hasEnd bool
	value  string
	lease  int64
}

// apply runs a write transaction and reports whether it changed anything.
func (m *model) apply(ops []modelOp) bool {
	cur := m.states[m.rev()]
	next := make(map[string]modelKV, len(cur))
	for k, v := range cur {
		next[k] = v
	}
	rev := m.rev() + 1
	changed := false
	for _, op := range ops {
		if op.del {
			for k := range next {
				if inRange(k, op.key, op.end, op.hasEnd) {
					delete(next, k)
					changed = true
				}
			}
			continue
		}
		old, ok := next[op.key]
		kv := modelKV{value: op.value, create: rev, mod: rev, ver: 1, lease: op.lease}
		if ok {
			kv.create, kv.ver = old.create, old.ver+1
		}
		next[op.key] = kv
		changed = true
	}
	if changed {
		m.states = append(m.states, next)
	}
	return changed
}

func (m *model) rangeAt(key, end string, hasEnd bool, rev int64) []string {
	var keys []string
	for k := range m.states[rev] {
		if inRange(k, key, end, hasEnd) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

var (
	genKey = rapid.SampledFrom([]string{"a", "b", "ba", "bb", "c", "d", "e", "\x00", "\xff"})
	genEnd = rapid.SampledFrom([]string{"", "b", "bb", "c", "e", "z"})
)

func genOp(t *rapid.T, label string) modelOp {
	op := modelOp{del: rapid.IntRange(0, 3).Draw(t, label+"kind") == 0, key: genKey.Draw(t, label+"key")}
	if op.del {
		op.hasEnd = rapid.Bool().Draw(t, label+"hasEnd")
		if op.hasEnd {
			op.end = genEnd.Draw(t, label+"end")
		}
		return op
	}
	op.value = rapid.StringN(0, 8, -1).Draw(t, label+"value")
	op.lease = int64(rapid.IntRange(0, 2).Draw(t, label+"lease"))
	return op
}

func endBytes(end string, hasEnd bool) []byte {
	if !hasEnd {
		return nil
	}
	return []byte(end)
}

// checkRange compares one range against the model.
func checkRange(t *rapid.T, rd interface {
	Range(key, end []byte, ro RangeOptions) (*RangeResult, error)
}, m *model, cur int64, label string) {
	key := genKey.Draw(t, label+"key")
	hasEnd := rapid.Bool().Draw(t, label+"hasEnd")
	end := ""
	if hasEnd {
		end = genEnd.Draw(t, label+"end")
	}
	rev := int64(rapid.IntRange(-1, int(cur)+1).Draw(t, label+"rev"))
	ro := RangeOptions{
		Rev:            Revision(rev),
		Limit:          int64(rapid.IntRange(0, 3).Draw(t, label+"limit")),
		CountOnly:      rapid.Bool().Draw(t, label+"countOnly"),
		KeysOnly:       rapid.Bool().Draw(t, label+"keysOnly"),
		WithTotalCount: rapid.Bool().Draw(t, label+"total"),
	}
	res, err := rd.Range([]byte(key), endBytes(end, hasEnd), ro)
	at := rev
	if at <= 0 {
		at = cur
	}
	switch {
	case rev > cur:
		if err != ErrFutureRev {
			t.Fatalf("range at future rev %d (current %d): err %v", rev, cur, err)
		}
		return
	case at < m.compact:
		if err != ErrCompacted {
			t.Fatalf("range at compacted rev %d (compact %d): err %v", at, m.compact, err)
		}
		return
	case err != nil:
		t.Fatalf("range: %v", err)
	}
	if int64(res.Rev) != cur {
		t.Fatalf("header rev %d, want %d", res.Rev, cur)
	}
	want := m.rangeAt(key, end, hasEnd, at)
	wantCount := len(want)
	if ro.Limit > 0 && len(want) > int(ro.Limit) {
		want = want[:ro.Limit]
		if !ro.WithTotalCount && !ro.CountOnly && hasEnd {
			wantCount = -1 // only a lower bound is promised
		}
	}
	if wantCount >= 0 && res.Count != wantCount {
		t.Fatalf("range [%q,%q) at %d: count %d, want %d", key, end, at, res.Count, wantCount)
	}
	if ro.CountOnly {
		if len(res.KVs) != 0 {
			t.Fatalf("count only returned kvs")
		}
		return
	}
	if len(res.KVs) != len(want) {
		t.Fatalf("range [%q,%q) at %d: %d kvs, want %v", key, end, at, len(res.KVs), want)
	}
	for i, k := range want {
		got, exp := res.KVs[i], m.states[at][k]
		if string(got.Key) != k || got.ModRevision != exp.mod || got.CreateRevision != exp.create || got.Version != exp.ver {
			t.Fatalf("kv %d: got %v, want key %q %+v", i, got, k, exp)
		}
		if ro.KeysOnly {
			if got.Value != nil || got.Lease != 0 {
				t.Fatalf("keys only returned value or lease: %v", got)
			}
		} else if string(got.Value) != exp.value || got.Lease != exp.lease {
			t.Fatalf("kv %d: got %v, want %+v", i, got, exp)
		}
	}
}

func TestStoreAgainstModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s, m := New(), newModel()
		type heldView struct {
			v   *View
			rev int64
		}
		var views []heldView
		t.Repeat(map[string]func(*rapid.T){
			"txn": func(t *rapid.T) {
				n := rapid.IntRange(1, 4).Draw(t, "ops")
				var ops []modelOp
				// etcd rejects a key put twice, or put and deleted, in one txn.
				clash := func(op modelOp) bool {
					for _, o := range ops {
						switch {
						case !op.del && !o.del && o.key == op.key:
							return true
						case !op.del && o.del && inRange(op.key, o.key, o.end, o.hasEnd):
							return true
						case op.del && !o.del && inRange(o.key, op.key, op.end, op.hasEnd):
							return true
						}
					}
					return false
				}
				for i := 0; i < n; i++ {
					if op := genOp(t, fmt.Sprint(i)); !clash(op) {
						ops = append(ops, op)
					}
				}
				rev := writeOps(s, ops)
				m.apply(ops)
				if int64(rev) != m.rev() {
					t.Fatalf("store at rev %d, model at %d", rev, m.rev())
				}
			},
			"range": func(t *rapid.T) { checkRange(t, s, m, m.rev(), "r") },
			"compact": func(t *rapid.T) {
				rev := int64(rapid.IntRange(0, int(m.rev())+1).Draw(t, "compactRev"))
				err := s.Compact(Revision(rev), nil)
				switch {
				case rev <= m.compact:
					if err != ErrCompacted {
						t.Fatalf("compact %d after %d: %v", rev, m.compact, err)
					}
				case rev > m.rev():
					if err != ErrFutureRev {
						t.Fatalf("compact future %d: %v", rev, err)
					}
				default:
					if err != nil {
						t.Fatalf("compact %d: %v", rev, err)
					}
					m.compact = rev
				}
			},
			"scan": func(t *rapid.T) {
				from := int64(rapid.IntRange(int(max(m.compact, 0)), int(m.rev())+1).Draw(t, "from"))
				got := map[int64][]string{}
				err := s.ScanEvents(Revision(from), func(ev *mvccpb.Event) bool {
					got[ev.Kv.ModRevision] = append(got[ev.Kv.ModRevision], fmt.Sprintf("%s %s=%s v%d c%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.Version, ev.Kv.CreateRevision))
					return true
				})
				if err != nil {
					t.Fatalf("scan from %d: %v", from, err)
				}
				for r := max(from, 2); r <= m.rev(); r++ {
					var want []string
					prev, cur := m.states[r-1], m.states[r]
					for k, kv := range cur {
						if old, ok := prev[k]; !ok || old != kv {
							want = append(want, fmt.Sprintf("PUT %s=%s v%d c%d", k, kv.value, kv.ver, kv.create))
						}
					}
					for k := range prev {
						if _, ok := cur[k]; !ok {
							want = append(want, fmt.Sprintf("DELETE %s= v0 c0", k))
						}
					}
					sort.Strings(want)
					g := got[r]
					sort.Strings(g)
					if strings.Join(g, "|") != strings.Join(want, "|") {
						t.Fatalf("events at %d (scan from %d, compact %d): got %v, want %v", r, from, m.compact, g, want)
					}
				}
			},
			"step": func(t *rapid.T) {
				s.Step(rapid.IntRange(1, 20).Draw(t, "budget"))
				checkBackend(t, s)
				if err := s.CheckInvariants(); err != nil {
					t.Fatal(err)
				}
			},
			"view": func(t *rapid.T) {
				views = append(views, heldView{s.View(), m.rev()})
			},
			"readView": func(t *rapid.T) {
				if len(views) == 0 {
					t.Skip("no view")
				}
				hv := views[rapid.IntRange(0, len(views)-1).Draw(t, "view")]
				saved := m.compact
				m.compact = int64(hv.v.CompactRev())
				checkRange(t, hv.v, m, hv.rev, "v")
				m.compact = saved
			},
			"checkpoint": func(t *rapid.T) {
				snap := s.Snapshot()
				var buf bytes.Buffer
				if _, err := snap.WriteTo(&buf); err != nil {
					t.Fatal(err)
				}
				h1, err := snap.HashKV(0)
				if err != nil {
					t.Fatal(err)
				}
				loaded, n, err := Load(buf.Bytes())
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				if n != buf.Len() {
					t.Fatalf("load consumed %d of %d", n, buf.Len())
				}
				h2, _ := loaded.Snapshot().HashKV(0)
				if h1 != h2 {
					t.Fatalf("hash before checkpoint %+v, after %+v", h1, h2)
				}
				// Physical compaction must not change the hash either.
				for s.Step(1000) {
				}
				h3, _ := s.Snapshot().HashKV(0)
				if h1 != h3 {
					t.Fatalf("hash before physical compaction %+v, after %+v", h1, h3)
				}
				checkColdLive(t, s)
				checkBackend(t, loaded)
				s = loaded
				views = nil
			},
			"etcdBucket": func(t *rapid.T) {
				s = bucketRoundTrip(t, s)
				views = nil
			},
		})
	})
}

// writeOps writes ops in one transaction and returns its revision.
func writeOps(s *Store, ops []modelOp) Revision {
	tx := s.Write()
	for _, op := range ops {
		if op.del {
			tx.DeleteRange([]byte(op.key), endBytes(op.end, op.hasEnd))
		} else {
			tx.Put([]byte(op.key), []byte(op.value), LeaseID(op.lease))
		}
	}
	return tx.End()
}

// bucketRoundTrip writes the store's key space as etcd's key bucket,
// builds a store back from it and checks that it is the store's: the
// same checkpoint content, byte for byte. It returns the rebuilt store.
func bucketRoundTrip(t *rapid.T, s *Store) *Store {
	snap := s.Snapshot()
	var want bytes.Buffer
	if _, err := snap.WriteTo(&want); err != nil {
		t.Fatal(err)
	}
	var im BucketImporter
	err := snap.ExportBucket(func(k, v []byte) error { return im.Add(k, v) })
	if err != nil {
		t.Fatalf("export or import of the key bucket: %v", err)
	}
	got := im.AppendCheckpoint(nil, snap.CompactRev())
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("key space through etcd's key bucket:\n%x\nwant\n%x", got, want.Bytes())
	}
	// The same, streamed as a restore writes it; and its status read as
	// `snapshot status` reads it.
	var entries []bucketEntryBytes
	err = snap.ExportBucket(func(k, v []byte) error {
		entries = append(entries, bucketEntryBytes{bytes.Clone(k), bytes.Clone(v)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkBucketStat(t, entries, s, im.lastMod)
	streamed, err := streamEntries(entries, snap.CompactRev(), im.lastMod)
	if err != nil {
		t.Fatalf("stream the key bucket: %v", err)
	}
	if !bytes.Equal(streamed, want.Bytes()) {
		t.Fatalf("key space streamed from etcd's key bucket:\n%x\nwant\n%x", streamed, want.Bytes())
	}
	loaded, _, err := Load(got)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return loaded
}

func TestPhysicalCompactionFreesSlabs(t *testing.T) {
	s := New()
	value := bytes.Repeat([]byte("v"), 1000)
	for i := 0; i < 20000; i++ {
		tx := s.Write()
		tx.Put([]byte(fmt.Sprintf("k%02d", i%50)), value, 0)
		tx.End()
	}
	slabBytes := func() int64 { return s.hot.bytes + s.cold.bytes }
	before := slabBytes()
	if err := s.Compact(s.Rev(), nil); err != nil {
		t.Fatal(err)
	}
	for s.Step(100) {
	}
	after := slabBytes()
	if after*5 > before {
		t.Fatalf("compaction kept %d of %d bytes", after, before)
	}
	res, err := s.Range([]byte("k"), []byte("l"), RangeOptions{})
	if err != nil || res.Count != 50 {
		t.Fatalf("after compaction: %v %v", res, err)
	}
	for _, kv := range res.KVs {
		if string(kv.Value) != string(value) {
			t.Fatal("value changed by compaction")
		}
	}
}
