package etcddb

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
)

// BenchmarkWrite writes etcd's database file of a key space of 100k keys
// with 100-byte values, as the Snapshot stream does before it sends it.
func BenchmarkWrite(b *testing.B) {
	keys := 100000
	if k := os.Getenv("ETCDDB_BENCH_KEYS"); k != "" {
		keys, _ = strconv.Atoi(k)
	}
	s := mvcc.New()
	value := make([]byte, 100)
	for i := 0; i < keys; i += 128 {
		tx := s.Write()
		for j := i; j < min(i+128, keys); j++ {
			tx.Put([]byte(fmt.Sprintf("/registry/key/%08d", j)), value, 0)
		}
		tx.End()
	}
	view := s.Snapshot()
	ex := &core.ExchangeState{ConfState: &raftpb.ConfState{}, CompactRev: -1}
	dir := b.TempDir()
	b.ResetTimer()
	for i := range b.N {
		if err := Write(filepath.Join(dir, fmt.Sprint(i)), ex, view); err != nil {
			b.Fatal(err)
		}
	}
}
