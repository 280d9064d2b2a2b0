//go:build !linux

package diskfs

import (
	"errors"
	"os"
)

func datasync(f *os.File) error { return f.Sync() }

// fallocate is a no-op where there is no portable way to preallocate.
func fallocate(f *os.File, size int64) error { return nil }

func adviseHugePages([]byte, bool) {}

// mapFile is not done here: the checkpoint is read instead.
func mapFile(*os.File, int) ([]byte, error) { return nil, errors.ErrUnsupported }
