package mvcc

import (
	"bytes"
	"fmt"
	"testing"
)

// TestBoltBytesAgainstEtcd compares the model of etcd's file with what
// etcd 3.7.3's file grew by per put, measured with puts of new 15-byte
// keys (tests/quota_diff_test.go does the same against a live etcd).
func TestBoltBytesAgainstEtcd(t *testing.T) {
	cases := []struct {
		valueBytes   int
		etcdPerPut   int64 // bytes the file grew by per put, on average
		tolerancePct int64
	}{
		{10, 82, 3},
		{100, 189, 3},
		{500, 690, 3},
		{1000, 1387, 3},
		{2000, 4118, 3},
		{4000, 4147, 3},
		{6000, 6191, 3},
		{10240, 12730, 5},
		// Large values leave free pages between bolt's leaves that the
		// model does not count.
		{50000, 59883, 15},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.valueBytes), func(t *testing.T) {
			s := New()
			s.BumpRevision(20000) // revisions of 3 bytes, as most in the measures
			tx := s.Write()
			tx.Put([]byte("/quota/00020000"), bytes.Repeat([]byte("v"), tc.valueBytes), 0)
			tx.End()
			got := s.SizeInUse()
			if d := got - tc.etcdPerPut; d*100 > tc.tolerancePct*tc.etcdPerPut || -d*100 > tc.tolerancePct*tc.etcdPerPut {
				t.Fatalf("a put of %d B takes %d B, etcd's %d B", tc.valueBytes, got, tc.etcdPerPut)
			}
		})
	}
}

// TestBackendSizeLikeEtcdsFile: compaction frees what it drops from the
// size in use at once, the size stays until a defragmentation, and a
// checkpoint's round trip keeps the size in use.
func TestBackendSizeLikeEtcdsFile(t *testing.T) {
	s := New()
	value := bytes.Repeat([]byte("v"), 100)
	for i := range 1000 {
		put(s, fmt.Sprintf("k%d", i%10), string(value))
	}
	full := s.Size()
	if s.SizeInUse() != full || full < 1000*100 {
		t.Fatalf("after 1000 puts: size %d, in use %d", full, s.SizeInUse())
	}
	if err := s.Compact(s.Rev(), nil); err != nil {
		t.Fatal(err)
	}
	for s.Step(10) {
	}
	checkBackend(t, s)
	if s.Size() != full || s.SizeInUse() > full/50 {
		t.Fatalf("compacted to 10 keys: size %d (was %d), in use %d", s.Size(), full, s.SizeInUse())
	}
	inUse := s.SizeInUse()
	loaded := reloaded(t, s)
	if loaded.SizeInUse() != inUse {
		t.Fatalf("loaded: in use %d, before %d", loaded.SizeInUse(), inUse)
	}
	s.Defragment(nil)
	for s.Step(10) {
	}
	if s.Size() != inUse || s.SizeInUse() != inUse {
		t.Fatalf("defragmented: size %d, in use %d, want both %d", s.Size(), s.SizeInUse(), inUse)
	}
}

// checkBackend checks that the modelled size in use is the bolt pages of
// every record the index holds, and of the records a compaction step cut
// out of it but has not let go yet, and the size no less; and that each
// record's pages are at least its slab bytes, so that the quota bounds
// detcd's memory too.
func checkBackend(t interface{ Fatalf(string, ...any) }, s *Store) {
	var want int64
	add := func(r record) {
		b := boltBytes(r)
		if b < recordFootprint(r) {
			t.Fatalf("record of %d slab bytes takes %d bytes of bolt pages", recordFootprint(r), b)
		}
		want += b
	}
	s.tree.Ascend(func(it item) bool {
		for _, r := range s.links.records(it) {
			add(r)
		}
		return true
	})
	if j := s.jobs.head(); j != nil {
		for d := j.dead; d.ok; d.next(&s.links) {
			add(d.rec)
		}
	}
	if s.backendInUse != want || s.backendSize < want {
		t.Fatalf("modelled size %d, in use %d; the index's records take %d", s.backendSize, s.backendInUse, want)
	}
}
