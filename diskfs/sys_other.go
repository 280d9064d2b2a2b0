//go:build !linux

package diskfs

import "os"

func datasync(f *os.File) error { return f.Sync() }

// fallocate is a no-op where there is no portable way to preallocate.
func fallocate(f *os.File, size int64) error { return nil }

func adviseHugePages([]byte, bool) {}
