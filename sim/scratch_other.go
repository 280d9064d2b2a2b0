//go:build !linux

package sim

import (
	"fmt"
	"os"
)

// memFile makes a file holding b. Without Linux's memfd_create it is a
// temporary file on the host, removed by remove.
func memFile(b []byte) (path string, remove func(), err error) {
	f, err := os.CreateTemp("", "detcd-sim-snapshot-*")
	if err != nil {
		return "", nil, fmt.Errorf("sim: %w", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", nil, fmt.Errorf("sim: %w", err)
	}
	return f.Name(), func() { os.Remove(f.Name()) }, nil
}
