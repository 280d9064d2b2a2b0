package sim

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// memFile makes a file in memory holding b (memfd_create: no directory
// names it, nothing of it reaches a disk, and it is gone once closed),
// for code that needs a path to an os file: bbolt maps etcd's database
// file, so the Snapshot handler's scratch file and the backups the checks
// decode are files, but the simulator keeps them off the host's disks.
// path opens it again (through /proc); remove closes it.
func memFile(b []byte) (path string, remove func(), err error) {
	fd, err := unix.MemfdCreate("detcd-sim-snapshot", unix.MFD_CLOEXEC)
	if err != nil {
		return "", nil, fmt.Errorf("sim: memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "detcd-sim-snapshot")
	if _, err := f.Write(b); err != nil {
		f.Close()
		return "", nil, fmt.Errorf("sim: memfd: %w", err)
	}
	return fmt.Sprintf("/proc/self/fd/%d", fd), func() { f.Close() }, nil
}
