package memfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// file is an open handle on an inode. name is the name it was opened under,
// reported to SyncErr even after a rename, like a file descriptor.
type file struct {
	fs       *FS
	n        *inode
	name     string
	gen      uint64
	off      int64
	writable bool
	closed   bool
}

func (f *file) check(op string, write bool) error {
	switch {
	case f.closed:
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	case f.gen != f.fs.gen:
		return &fs.PathError{Op: op, Path: f.name, Err: ErrCrashed}
	case write && !f.writable:
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrPermission}
	}
	return nil
}

func (f *file) checkSize(op string, size int64) error {
	if size < 0 || size > FileBytesMax {
		return &fs.PathError{Op: op, Path: f.name, Err: fmt.Errorf("size %d outside [0, FileBytesMax %d]", size, int64(FileBytesMax))}
	}
	return nil
}

func (f *file) Read(p []byte) (int, error) {
	n, err := f.ReadAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: errors.New("negative offset")}
	}
	if off >= int64(f.n.size) {
		return 0, io.EOF
	}
	n := f.n.readAt(p, int(off))
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *file) Write(p []byte) (int, error) {
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	if err := f.checkSize("write", f.off+int64(len(p))); err != nil {
		return 0, err
	}
	f.n.writeAt(p, int(f.off))
	f.off += int64(len(p))
	return len(p), nil
}

func (f *file) Size() (int64, error) {
	if err := f.check("stat", false); err != nil {
		return 0, err
	}
	return int64(f.n.size), nil
}

func (f *file) Sync() error {
	if err := f.check("fsync", false); err != nil {
		return err
	}
	if f.fs.SyncErr != nil {
		if err := f.fs.SyncErr(f.name); err != nil {
			return &fs.PathError{Op: "fsync", Path: f.name, Err: err}
		}
	}
	f.n.sync()
	return nil
}

func (f *file) Truncate(size int64) error {
	if err := f.check("truncate", true); err != nil {
		return err
	}
	if err := f.checkSize("truncate", size); err != nil {
		return err
	}
	f.n.truncate(int(size))
	return nil
}

// Preallocate grows the file with zeros, as fallocate with mode 0 does.
func (f *file) Preallocate(size int64) error {
	if err := f.check("preallocate", true); err != nil {
		return err
	}
	if err := f.checkSize("preallocate", size); err != nil {
		return err
	}
	if size > int64(f.n.size) {
		f.n.truncate(int(size))
	}
	return nil
}

func (f *file) Close() error {
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}
