package diskfs

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/detcd/detcd/core/wal"
)

const (
	fileMode = 0o600
	dirMode  = 0o700
)

type diskFS struct {
	root string
}

// New returns an FS rooted at root, which must exist.
func New(root string) wal.FS {
	return &diskFS{root: root}
}

// hugeBufferMinBytes is the smallest buffer AllocBuffer backs with huge
// pages: below it the faults saved are too few to matter.
const hugeBufferMinBytes = 8 << 20

// AllocBuffer is a buffer of n bytes that, if large, the kernel backs with
// huge pages as it is first written: reading a 1 GB checkpoint into it
// takes about a thousand page faults instead of a quarter million, a few
// seconds of system time on a busy machine. The advice is given only
// where transparent huge pages are in "madvise" mode (elsewhere it is
// either not needed or not heeded); advice the kernel refuses costs only
// those faults.
func (d *diskFS) AllocBuffer(n int) []byte {
	b := make([]byte, n)
	if n >= hugeBufferMinBytes {
		adviseHugePages(b, true)
	}
	return b
}

// BufferFilled takes the advice back once the buffer is read: the range
// is Go heap, which the runtime reuses after the buffer dies, and left
// advised its later faults could stall on the kernel compacting memory
// and its freed pages be gathered into huge ones again. Pages already
// huge stay so.
func (d *diskFS) BufferFilled(b []byte) {
	if len(b) >= hugeBufferMinBytes {
		adviseHugePages(b, false)
	}
}

// Map maps f's first n bytes read only (wal.Mapper): a restart's
// checkpoint, which the loaded store then aliases, served from the page
// cache as etcd's bolt file is, instead of read into n bytes of fresh
// memory that the kernel would first have to zero. The mapping is never
// unmapped (see wal.Mapper for why and what bounds it). A zero n maps
// nothing.
func (d *diskFS) Map(f wal.File, n int) ([]byte, error) {
	ff, ok := f.(*file)
	if !ok {
		return nil, fmt.Errorf("diskfs: map: %T is not a diskfs file", f)
	}
	if n == 0 {
		return []byte{}, nil
	}
	return mapFile(ff.f, n)
}

func (d *diskFS) path(op, name string) (string, error) {
	c := path.Clean(name)
	if !fs.ValidPath(c) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	return filepath.Join(d.root, filepath.FromSlash(c)), nil
}

func (d *diskFS) open(op, name string, flag int) (wal.File, error) {
	p, err := d.path(op, name)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, flag, fileMode)
	if err != nil {
		return nil, err
	}
	return &file{f: f}, nil
}

func (d *diskFS) Create(name string) (wal.File, error) {
	return d.open("create", name, os.O_RDWR|os.O_CREATE|os.O_TRUNC)
}

func (d *diskFS) Open(name string) (wal.File, error) {
	return d.open("open", name, os.O_RDONLY)
}

// OpenAppend seeks to the end once instead of using O_APPEND: with O_APPEND
// every write would land after the zeros Preallocate adds.
func (d *diskFS) OpenAppend(name string) (wal.File, error) {
	f, err := d.open("open", name, os.O_RDWR)
	if err != nil {
		return nil, err
	}
	if _, err := f.(*file).f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("diskfs: seek to end of %s: %w", name, err)
	}
	return f, nil
}

func (d *diskFS) Remove(name string) error {
	p, err := d.path("remove", name)
	if err != nil {
		return err
	}
	return os.Remove(p)
}

func (d *diskFS) Rename(oldname, newname string) error {
	op, err := d.path("rename", oldname)
	if err != nil {
		return err
	}
	np, err := d.path("rename", newname)
	if err != nil {
		return err
	}
	return os.Rename(op, np)
}

func (d *diskFS) List(dir string) ([]string, error) {
	p, err := d.path("list", dir)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(p) // sorted by name
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}

func (d *diskFS) MkdirAll(dir string) error {
	p, err := d.path("mkdir", dir)
	if err != nil {
		return err
	}
	return os.MkdirAll(p, dirMode)
}

func (d *diskFS) SyncDir(dir string) error {
	p, err := d.path("syncdir", dir)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("diskfs: sync dir %s: %w", dir, err)
	}
	return nil
}

type file struct {
	f *os.File
}

func (f *file) Read(p []byte) (int, error)              { return f.f.Read(p) }
func (f *file) ReadAt(p []byte, off int64) (int, error) { return f.f.ReadAt(p, off) }
func (f *file) Write(p []byte) (int, error)             { return f.f.Write(p) }
func (f *file) Truncate(size int64) error               { return f.f.Truncate(size) }
func (f *file) Close() error                            { return f.f.Close() }

func (f *file) Size() (int64, error) {
	st, err := f.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (f *file) Sync() error {
	if err := datasync(f.f); err != nil {
		return &fs.PathError{Op: "fdatasync", Path: f.f.Name(), Err: err}
	}
	return nil
}

func (f *file) Preallocate(size int64) error {
	cur, err := f.Size()
	if err != nil || size <= cur {
		return err
	}
	if err := fallocate(f.f, size); err != nil {
		return &fs.PathError{Op: "fallocate", Path: f.f.Name(), Err: err}
	}
	return nil
}
