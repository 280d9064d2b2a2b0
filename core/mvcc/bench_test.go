package mvcc

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// Benchmarks of the key space alone, without raft, WAL or gRPC. They are
// reported by `make bench`, never asserted. Values are 256 bytes, as in the
// load runs of cmd/detcd-bench.

const benchValSize = 256

var benchValue = func() []byte {
	v := make([]byte, benchValSize)
	for i := range v {
		v[i] = byte('a' + i%26)
	}
	return v
}()

// benchKey writes the key "key/%016x" of i into dst (24 bytes, sorted as i).
func benchKey(dst []byte, i uint64) []byte {
	dst = append(dst[:0], "key/"...)
	const hex = "0123456789abcdef"
	for s := 60; s >= 0; s -= 4 {
		dst = append(dst, hex[(i>>uint(s))&0xf])
	}
	return dst
}

// filledStore returns a store holding keys 0..n-1, one revision each.
func filledStore(n int) *Store { return filledStoreOf(n, benchKey) }

// filledStoreOf is filledStore with keys made by key.
func filledStoreOf(n int, key func([]byte, uint64) []byte) *Store {
	s := New()
	var k []byte
	for i := range n {
		k = key(k, uint64(i))
		t := s.Write()
		t.Put(k, benchValue, 0)
		t.End()
	}
	return s
}

// mix spreads i over [0, n) without a visible stride, so that writes touch
// the tree in a scattered order as clients would.
func mix(i uint64, n int) uint64 {
	i ^= i >> 33
	i *= 0xff51afd7ed558ccd
	i ^= i >> 33
	return i % uint64(n)
}

// BenchmarkPutNew: one transaction per op putting a key that does not
// exist yet. The store grows by one key per op.
func BenchmarkPutNew(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(benchValSize)
	s := New()
	var k []byte
	var i uint64
	for b.Loop() {
		k = benchKey(k, i)
		i++
		t := s.Write()
		t.Put(k, benchValue, 0)
		t.End()
	}
}

// BenchmarkPutExisting: one transaction per op overwriting one of 10k or
// 1M existing keys, scattered. History grows (nothing compacts). Keys are
// "key/%016x" (a long shared prefix, as Kubernetes' keys have), or with
// keys=.../varint 16 bytes holding i as a varint, as etcd's benchmark tool
// writes them.
func BenchmarkPutExisting(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		for _, varint := range []bool{false, true} {
			name := fmt.Sprintf("keys=%d", n)
			key := benchKey
			if varint {
				name += "/varint"
				key = benchVarintKey
			}
			b.Run(name, func(b *testing.B) {
				s := filledStoreOf(n, key)
				var k []byte
				b.ReportAllocs()
				b.SetBytes(benchValSize)
				var i uint64
				for b.Loop() {
					k = key(k, mix(i, n))
					i++
					t := s.Write()
					t.Put(k, benchValue, 0)
					t.End()
				}
			})
		}
	}
}

// benchVarintKey writes i as a varint into a 16-byte key, as etcd's
// benchmark tool makes its keys.
func benchVarintKey(dst []byte, i uint64) []byte {
	dst = append(dst[:0], make([]byte, 16)...)
	binary.PutVarint(dst, int64(i))
	return dst
}

// BenchmarkRangeOne: a single-key Range on the store among 100k keys.
func BenchmarkRangeOne(b *testing.B) {
	const n = 100_000
	s := filledStore(n)
	b.ReportAllocs()
	var k []byte
	var i uint64
	for b.Loop() {
		k = benchKey(k, mix(i, n))
		i++
		res, err := s.Range(k, nil, RangeOptions{})
		if err != nil || len(res.KVs) != 1 {
			b.Fatalf("range %q: %v, %d kvs", k, err, len(res.KVs))
		}
	}
}

// prefixStore holds groups*100 keys "p/%04d/%03d": 100 under each prefix.
func prefixStore(groups int) *Store {
	s := New()
	for g := range groups {
		for j := range 100 {
			t := s.Write()
			t.Put(fmt.Appendf(nil, "p/%04d/%03d", g, j), benchValue, 0)
			t.End()
		}
	}
	return s
}

// BenchmarkRangePrefix100: a prefix Range returning 100 key-values, among
// 100k keys.
func BenchmarkRangePrefix100(b *testing.B) {
	const groups = 1000
	s := prefixStore(groups)
	b.ReportAllocs()
	var i uint64
	key := make([]byte, 0, 16)
	end := make([]byte, 0, 16)
	for b.Loop() {
		g := mix(i, groups)
		i++
		key = fmt.Appendf(key[:0], "p/%04d/", g)
		end = append(end[:0], key...)
		end[len(end)-1]++ // prefix end: "p/NNNN0"
		res, err := s.Range(key, end, RangeOptions{})
		if err != nil || len(res.KVs) != 100 {
			b.Fatalf("range %q: %v, %d kvs", key, err, len(res.KVs))
		}
	}
}

// BenchmarkViewRead: reads on Views while the owner goroutine keeps
// writing, as gRPC goroutines read while core's loop applies.
//
//   - concurrent: a writer goroutine owns the store, puts over 100k keys
//     without pause (compacting every 64k revisions so memory stays flat)
//     and publishes a fresh View after every write; the benchmark reads one
//     key on the newest published View. writes/op is how many writes
//     happened per read.
//   - write+view+read: one goroutine does a put, takes the new View and
//     reads one key from it: the cost of a view on the write path
//     (btree copy-on-write after Clone) plus the read.
func BenchmarkViewRead(b *testing.B) {
	const n = 100_000
	b.Run("concurrent", func(b *testing.B) {
		s := filledStore(n)
		var cur atomic.Pointer[View]
		cur.Store(s.View())
		var stop atomic.Bool
		var writes atomic.Int64
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			var k []byte
			var i uint64
			for !stop.Load() {
				k = benchKey(k, mix(i, n))
				i++
				t := s.Write()
				t.Put(k, benchValue, 0)
				rev := t.End()
				if i%65536 == 0 {
					if err := s.Compact(rev-1, nil); err == nil {
						for s.Step(20000) {
						}
					}
				}
				cur.Store(s.View())
				writes.Add(1)
			}
		}()
		// Let the writer start before timing.
		for writes.Load() < 1000 {
			runtime.Gosched()
		}
		b.ReportAllocs()
		w0 := writes.Load()
		var k []byte
		var i uint64
		for b.Loop() {
			k = benchKey(k, mix(i, n))
			i++
			res, err := cur.Load().Range(k, nil, RangeOptions{})
			if err != nil || len(res.KVs) != 1 {
				b.Fatalf("range %q: %v", k, err)
			}
		}
		w := writes.Load() - w0
		stop.Store(true)
		wg.Wait()
		b.ReportMetric(float64(w)/float64(b.N), "writes/op")
	})
	b.Run("write+view+read", func(b *testing.B) {
		s := filledStore(n)
		b.ReportAllocs()
		var k []byte
		var i uint64
		for b.Loop() {
			k = benchKey(k, mix(i, n))
			i++
			t := s.Write()
			t.Put(k, benchValue, 0)
			t.End()
			k = benchKey(k, mix(i*7919, n))
			res, err := s.View().Range(k, nil, RangeOptions{})
			if err != nil || len(res.KVs) != 1 {
				b.Fatalf("range %q: %v", k, err)
			}
		}
	})
}

// BenchmarkTxn4Ops: one write transaction of four operations, as in etcd's
// `benchmark txn-mixed`/`txn-put --txn-ops 4`: puts of three existing keys
// and a single-key range, among 100k keys.
func BenchmarkTxn4Ops(b *testing.B) {
	const n = 100_000
	s := filledStore(n)
	b.ReportAllocs()
	var k1, k2, k3, k4 []byte
	var i uint64
	for b.Loop() {
		k1 = benchKey(k1, mix(i, n))
		k2 = benchKey(k2, mix(i+1<<40, n))
		k3 = benchKey(k3, mix(i+2<<40, n))
		k4 = benchKey(k4, mix(i+3<<40, n))
		i++
		t := s.Write()
		t.Put(k1, benchValue, 0)
		t.Put(k2, benchValue, 0)
		if _, err := t.Range(k4, nil, RangeOptions{}); err != nil {
			b.Fatal(err)
		}
		t.Put(k3, benchValue, 0)
		t.End()
	}
}

// BenchmarkCompact: Compact to the newest revision then Step until the
// physical work is done, over a history of 100k revisions of 256-byte
// values. One op is the whole compaction; ns/rev divides by the revisions
// compacted. The setup (writing the history) is not timed.
//
//   - keys=100: 1000 revisions per key; keys=1000: 100 revisions per key;
//     most records are dropped. Comparing the two shows how the cost per
//     revision grows with the length of a key's history.
//   - keys=100000: one revision per key; every record moves to cold slabs.
func BenchmarkCompact(b *testing.B) {
	const revs = 100_000
	for _, keys := range []int{100, 1000, 100_000} {
		b.Run(fmt.Sprintf("revs=100k/keys=%d", keys), func(b *testing.B) {
			b.ReportAllocs()
			var k []byte
			var steps int
			for b.Loop() {
				b.StopTimer()
				s := New()
				for i := range revs {
					k = benchKey(k, uint64(i%keys))
					t := s.Write()
					t.Put(k, benchValue, 0)
					t.End()
				}
				runtime.GC()
				b.StartTimer()
				if err := s.Compact(s.Rev(), nil); err != nil {
					b.Fatal(err)
				}
				for s.Step(1000) { // core.CompactionStepRecordsMax
					steps++
				}
				steps++
				b.StopTimer()
				if s.Keys() != keys || s.Pending() {
					b.Fatalf("keys %d, pending %v after compaction", s.Keys(), s.Pending())
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*revs), "ns/rev")
			b.ReportMetric(float64(steps)/float64(b.N), "steps/op")
		})
	}
}

// BenchmarkIndexGet: finding a key's index entry among 100k keys, as every
// put does first, scattered.
func BenchmarkIndexGet(b *testing.B) {
	const n = 100_000
	for _, varint := range []bool{false, true} {
		name, key := "keys=100000", benchKey
		if varint {
			name, key = name+"/varint", benchVarintKey
		}
		b.Run(name, func(b *testing.B) {
			s := filledStoreOf(n, key)
			var k []byte
			b.ReportAllocs()
			var i uint64
			for b.Loop() {
				k = key(k, mix(i, n))
				i++
				if _, ok := s.get(k); !ok {
					b.Fatalf("key %q missing", k)
				}
			}
		})
	}
}

// BenchmarkLoad: rebuilding a store from a checkpoint of 100k keys, as a
// restart does. compacted=true is the store after a compaction at its
// last revision (every record in the cold section, in key order);
// compacted=false keeps every record in the hot section.
func BenchmarkLoad(b *testing.B) {
	const n = 100_000
	for _, compacted := range []bool{true, false} {
		b.Run(fmt.Sprintf("keys=100000/compacted=%v", compacted), func(b *testing.B) {
			data := checkpointOf(b, filledStore(n), compacted)
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				loaded, _, err := Load(data)
				if err != nil || loaded.Keys() != n {
					b.Fatalf("load: %v", err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
		})
	}
}
