package wal

import "io"

// FS is every file operation the WAL and checkpoints need. Names are
// slash-separated paths relative to the FS root, valid in the sense of
// io/fs.ValidPath.
type FS interface {
	// Create creates or truncates name for reading and writing, with the
	// offset at 0.
	Create(name string) (File, error)
	// Open opens an existing file read only.
	Open(name string) (File, error)
	// OpenAppend opens an existing file for reading and writing with the
	// offset at its size at open time. It is not O_APPEND: Preallocate may
	// then grow the size with zeros that later writes must overwrite.
	OpenAppend(name string) (File, error)
	Remove(name string) error
	// Rename replaces newname if it exists.
	Rename(oldname, newname string) error
	// List returns the base names in dir, sorted. A missing dir is an error
	// wrapping io/fs.ErrNotExist.
	List(dir string) ([]string, error)
	MkdirAll(dir string) error
	// SyncDir makes the creations, renames and removals in dir durable.
	SyncDir(dir string) error
}

// BufferAllocator is an FS that allocates the buffer a whole file is read
// into (a checkpoint, which the key space then lives in). diskfs backs a
// large one with huge pages, so that reading a checkpoint of gigabytes
// takes a page fault per 2 MiB instead of per 4 KiB. BufferFilled tells
// it the read is done, so that it can take back advice that would
// otherwise stay on memory the Go heap reuses.
type BufferAllocator interface {
	AllocBuffer(n int) []byte
	BufferFilled(b []byte)
}

// Mapper is an FS that can map a file read only, so that a checkpoint the
// key space then lives in is the file's clean page cache, which the kernel
// may evict and read back, instead of fresh anonymous memory that it must
// zero and the read then fill (most of a large restart's time). diskfs
// maps with mmap; memfs, the simulator's, has no mapping and reads.
//
// A mapping is never unmapped. The store loaded from it hands its records
// out, aliased, to views, range responses being encoded, watch events
// queued for slow streams and the lessor's key sets, and no reference count
// sees all of those; an unmap while one is left would turn a read into a
// fault. So only a restart maps its checkpoint (MapCheckpoint, once per data
// directory opened) and a snapshot install still reads into the heap: a
// server process holds at most one mapping, and the file it maps, once a
// later checkpoint replaces it and it is removed, keeps its disk space
// until the process exits. Nothing writes a checkpoint file in place (each
// is written under a temporary name and renamed), so the file under the
// mapping never shrinks, which would make a read of the cut-off pages
// fault (SIGBUS). What remains, as with etcd's mapped bolt file: a disk
// that fails to read back a page the kernel evicted faults the process
// instead of returning an error.
type Mapper interface {
	// Map maps f's first n bytes read only.
	Map(f File, n int) ([]byte, error)
}

// readWhole reads f's first n bytes, into a buffer from fsys if it
// allocates them.
func readWhole(fsys FS, f File, n int) ([]byte, error) {
	a, _ := fsys.(BufferAllocator)
	var b []byte
	if a != nil {
		b = a.AllocBuffer(n)
	} else {
		b = make([]byte, n)
	}
	got, err := f.ReadAt(b, 0)
	if a != nil {
		a.BufferFilled(b)
	}
	if got == n {
		return b, nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return nil, err
}

// mapWhole maps f's first n bytes if fsys maps, and reads them otherwise
// or where the mapping fails (a file system without mmap, say): reading
// costs time, never correctness.
func mapWhole(fsys FS, f File, n int) ([]byte, error) {
	if m, ok := fsys.(Mapper); ok {
		if b, err := m.Map(f, n); err == nil {
			return b, nil
		}
	}
	return readWhole(fsys, f, n)
}

// File is an open file. Read and Write share one offset, as with os.File;
// ReadAt ignores it; Truncate and Preallocate do not move it.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	Size() (int64, error)
	// Sync makes the file's data and size durable (fdatasync is enough).
	Sync() error
	Truncate(size int64) error
	// Preallocate reserves space up to size. It may grow the size, filling
	// with zeros, or do nothing; readers treat zeros after the written data
	// as unwritten.
	Preallocate(size int64) error
	Close() error
}
