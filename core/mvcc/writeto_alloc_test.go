package mvcc

import (
	"fmt"
	"io"
	"testing"
)

// TestWriteToAllocs: writing a view out allocates a fixed amount, not a
// copy of each record: a leader streams its whole store to a member that
// fell behind, and on a large heap such copies pile up as garbage.
func TestWriteToAllocs(t *testing.T) {
	s := New()
	for i := range 1000 {
		tx := s.Write()
		tx.Put([]byte(fmt.Sprintf("key%05d", i)), []byte("value"), 0)
		tx.End()
	}
	v := s.Snapshot()
	allocs := testing.AllocsPerRun(3, func() {
		if _, err := v.WriteTo(io.Discard); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > writeToAllocsMax {
		t.Fatalf("WriteTo of 1000 keys made %.0f allocations, want at most %d", allocs, writeToAllocsMax)
	}
}

// writeToAllocsMax is what WriteTo may allocate whatever the store's size:
// its buffer and a few small values.
const writeToAllocsMax = 10
