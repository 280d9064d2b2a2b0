//go:build !unix

package server

import (
	"io"
	"os"
)

// mapFile reads f's content where there is no mmap to map it with.
func mapFile(f *os.File) (data []byte, unmap func() error, err error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, err
	}
	data, err = io.ReadAll(f)
	return data, func() error { return nil }, err
}
