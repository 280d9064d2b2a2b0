package diskfs

import (
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

// datasync goes through the raw connection rather than File.Fd, which would
// switch the descriptor to blocking mode as a side effect.
func datasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}

// fallocate grows f to size with zeros. File systems without fallocate get
// no preallocation, which only costs speed.
func fallocate(f *os.File, size int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fallocate(int(fd), 0, 0, size)
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if errors.Is(serr, syscall.EOPNOTSUPP) || errors.Is(serr, syscall.ENOSYS) {
		return nil
	}
	return serr
}

// thpMadvise reports whether transparent huge pages are given only to
// memory advised so ("madvise" mode, the common default), read once.
var thpMadvise = sync.OnceValue(func() bool {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err == nil && strings.Contains(string(b), "[madvise]")
})

// adviseHugePages asks for huge pages for b's whole 2 MiB extents, or
// (on false) takes the request back.
func adviseHugePages(b []byte, on bool) {
	if !thpMadvise() {
		return
	}
	const huge = 2 << 20
	base := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	start := (base + huge - 1) &^ (huge - 1)
	end := (base + uintptr(len(b))) &^ (huge - 1)
	if end <= start {
		return
	}
	advice := syscall.MADV_HUGEPAGE
	if !on {
		advice = syscall.MADV_NOHUGEPAGE
	}
	lo := int(start - base)
	_ = syscall.Madvise(b[lo:lo+int(end-start)], advice) // advice only
}

// mapFile maps f's first n bytes read only and shared: the pages are the
// file's page cache, clean, so the kernel may evict them under memory
// pressure and read them back on the next touch.
func mapFile(f *os.File, n int) ([]byte, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var b []byte
	var serr error
	if err := rc.Control(func(fd uintptr) {
		b, serr = syscall.Mmap(int(fd), 0, n, syscall.PROT_READ, syscall.MAP_SHARED|mapPopulate)
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, &os.PathError{Op: "mmap", Path: f.Name(), Err: serr}
	}
	return b, nil
}

// mapPopulate has the kernel map every page at once, from the page cache
// (reading what is not there), as etcd maps its bolt file: the checksum
// pass at load touches every page anyway, and one call costs less than a
// fault per few pages (on a warm 1.0 GB checkpoint the two measured the
// same within noise, 1.5-2.0 s of CPU to a served restart).
const mapPopulate = syscall.MAP_POPULATE
