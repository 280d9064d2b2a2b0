package wal

import (
	"errors"
	"fmt"
)

// ErrCorrupt is wrapped by every error about damaged WAL or checkpoint data.
var ErrCorrupt = errors.New("wal: corrupt data")

// CorruptError locates damage: the file (its path in the FS) and the byte
// offset of the first bad record or chunk.
type CorruptError struct {
	File   string
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("wal: corrupt data in file %s at offset %d: %s", e.File, e.Offset, e.Reason)
}

func (e *CorruptError) Unwrap() error { return ErrCorrupt }

func corruptf(file string, off int64, format string, args ...any) error {
	return &CorruptError{File: file, Offset: off, Reason: fmt.Sprintf(format, args...)}
}
