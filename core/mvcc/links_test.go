package mvcc

import (
	"bytes"
	"fmt"
	"testing"
)

// TestPutAllocatesNoChainNode: overwriting a key adds nothing the garbage
// collector has to mark. Each older revision used to be a heap node, a
// million of them on a grown store, marked on every collection; now it is
// a link in a pointer-free chunk.
func TestPutAllocatesNoChainNode(t *testing.T) {
	s := filledStore(1000)
	var k []byte
	var i uint64
	allocs := testing.AllocsPerRun(20_000, func() {
		k = benchKey(k, mix(i, 1000))
		i++
		tx := s.Write()
		tx.Put(k, benchValue, 0)
		tx.End()
	})
	// Slabs (1 MiB) and link chunks (4096 links) come once per thousands
	// of puts.
	if allocs >= 0.1 {
		t.Fatalf("a put of an existing key allocates %.3f objects", allocs)
	}
}

// TestViewsReadAcrossSlabDrops: a view taken before a compaction reads
// every revision it held after the compaction dropped the hot slabs and
// the writes went on, and the store and a checkpoint of it read alike.
func TestViewsReadAcrossSlabDrops(t *testing.T) {
	const keys, revs = 7, 6000 // 1 KiB values: several slabs
	s := New()
	value := func(rev Revision) []byte { return bytes.Repeat([]byte{byte(rev)}, 1024) }
	put := func(rev Revision) {
		tx := s.Write()
		tx.Put(fmt.Appendf(nil, "k%d", rev%keys), value(rev), 0)
		tx.End()
	}
	for rev := Revision(2); rev <= revs; rev++ {
		put(rev)
	}
	mid := s.Rev() - 50
	if err := s.Compact(mid, nil); err != nil {
		t.Fatal(err)
	}
	old := s.View()
	slabs := len(s.hot.slabs)
	for s.Step(100) {
	}
	for rev := s.Rev() + 1; rev <= revs+3000; rev++ {
		put(rev)
	}
	if err := s.Compact(s.Rev()-10, nil); err != nil {
		t.Fatal(err)
	}
	for s.Step(100) {
	}
	if len(s.hot.slabs) >= slabs {
		t.Fatalf("compactions left %d hot slabs of %d", len(s.hot.slabs), slabs)
	}
	// check reads key k at rev through rd: the newest put of it at or
	// below rev.
	check := func(name string, rd func(key []byte, rev Revision) (*RangeResult, error), rev Revision) {
		for k := range Revision(keys) {
			want := rev - ((rev-k)%keys+keys)%keys
			rr, err := rd(fmt.Appendf(nil, "k%d", k), rev)
			if err != nil || len(rr.KVs) != 1 || rr.KVs[0].ModRevision != int64(want) || !bytes.Equal(rr.KVs[0].Value, value(want)) {
				t.Fatalf("%s: k%d at %d: %v %v, want the put at %d", name, k, rev, rr, err, want)
			}
		}
	}
	for rev := mid; rev <= revs; rev++ {
		check("old view", func(key []byte, rev Revision) (*RangeResult, error) {
			return old.Range(key, nil, RangeOptions{Rev: rev})
		}, rev)
	}
	loaded := reloaded(t, s)
	for rev := s.CompactRev(); rev <= s.Rev(); rev++ {
		check("store", func(key []byte, rev Revision) (*RangeResult, error) {
			return s.Range(key, nil, RangeOptions{Rev: rev})
		}, rev)
		check("loaded", func(key []byte, rev Revision) (*RangeResult, error) {
			return loaded.Range(key, nil, RangeOptions{Rev: rev})
		}, rev)
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	if err := loaded.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// reloaded is s written as a checkpoint and loaded back.
func reloaded(t *testing.T, s *Store) *Store {
	t.Helper()
	loaded, _, err := Load(checkpointOf(t, s, false))
	if err != nil {
		t.Fatal(err)
	}
	return loaded
}

// checkpointOf is s written as a checkpoint; with compacted, after a
// compaction at its last revision carried to the end (every record then
// in the cold section).
func checkpointOf(tb testing.TB, s *Store, compacted bool) []byte {
	tb.Helper()
	if compacted {
		if err := s.Compact(s.Rev(), nil); err != nil {
			tb.Fatal(err)
		}
		for s.Step(1000) {
		}
	}
	var buf bytes.Buffer
	if _, err := s.Snapshot().WriteTo(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
