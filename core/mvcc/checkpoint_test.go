package mvcc

import (
	"errors"
	"testing"
)

// TestLoadRefusesDamagedColdSection: WriteTo writes the cold section in
// key order, so Load refuses one out of key order (which it loaded before,
// the index sorting it) or with a key twice.
func TestLoadRefusesDamagedColdSection(t *testing.T) {
	s := New()
	for _, k := range []string{"a", "b", "c", "d"} {
		tx := s.Write()
		tx.Put([]byte(k), []byte("v-"+k), 0)
		tx.End()
	}
	data := checkpointOf(t, s, true)
	_, _, p, err := readHeader(data)
	if err != nil {
		t.Fatal(err)
	}
	// The cold section's records, each with its length prefix.
	var cold [][]byte
	last := p
	coldEnd, err := checkSection(data, p, func(_ record, off int) error {
		if off > last {
			cold = append(cold, data[last:off])
		}
		last = off
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cold = append(cold, data[last:coldEnd])
	if len(cold) != 4 {
		t.Fatalf("%d cold records, want 4", len(cold))
	}
	with := func(recs ...[]byte) []byte {
		out := append([]byte{}, data[:p]...)
		for _, r := range recs {
			out = append(out, r...)
		}
		return append(out, data[coldEnd:]...)
	}
	if _, _, err := Load(with(cold...)); err != nil {
		t.Fatalf("the checkpoint rebuilt as written: %v", err)
	}
	for name, damaged := range map[string][]byte{
		"swapped":           with(cold[0], cold[2], cold[1], cold[3]),
		"reversed":          with(cold[3], cold[2], cold[1], cold[0]),
		"key twice":         with(cold[0], cold[1], cold[1], cold[2], cold[3]),
		"first key twice":   with(cold[0], cold[0], cold[1], cold[2], cold[3]),
		"last out of order": with(cold[1], cold[2], cold[3], cold[0]),
	} {
		if _, _, err := Load(damaged); !errors.Is(err, ErrBadCheckpoint) {
			t.Errorf("%s: Load returned %v, want ErrBadCheckpoint", name, err)
		}
	}
}
