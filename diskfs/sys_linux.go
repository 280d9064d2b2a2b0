package diskfs

import (
	"errors"
	"os"
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

// adviseHugePages asks for huge pages for b's whole 2 MiB extents
// (transparent huge pages in "madvise" mode, the common default, give them
// only to memory so advised).
func adviseHugePages(b []byte) {
	const huge = 2 << 20
	start := (uintptr(unsafe.Pointer(unsafe.SliceData(b))) + huge - 1) &^ (huge - 1)
	end := (uintptr(unsafe.Pointer(unsafe.SliceData(b))) + uintptr(len(b))) &^ (huge - 1)
	if end <= start {
		return
	}
	lo := int(start - uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	_ = syscall.Madvise(b[lo:lo+int(end-start)], syscall.MADV_HUGEPAGE) // advice only
}
