package etcddb

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"

	"github.com/detcd/detcd/core"
)

// ReadSnapshot returns a snapshot file's state as a detcd backup, as
// `detcd snapshot restore` and `detcd snapshot status` read it. The
// file is etcd's database file, as `etcdctl snapshot save` writes from
// etcd or detcd, or as a stopped etcd member's member/snap/db is, or a
// backup in detcd's own format from before detcd wrote etcd's: the format
// is told by bolt's magic number.
func ReadSnapshot(path string, check HashCheck) ([]byte, error) {
	bolt, size, err := inspectSnapshot(path, check)
	if err != nil {
		return nil, err
	}
	if bolt {
		return ReadBackup(path)
	}
	return readDetcdBackup(path, size)
}

// OpenSnapshot opens a snapshot file, checked as ReadSnapshot checks it,
// as a backup to restore: the key space of etcd's database file is
// streamed from the file as the restore writes it (OpenBackup). done ends
// the read; call it after the restore.
func OpenSnapshot(path string, check HashCheck) (b core.Backup, done func() error, err error) {
	bolt, size, err := inspectSnapshot(path, check)
	if err != nil {
		return b, nil, err
	}
	if bolt {
		return OpenBackup(path)
	}
	whole, err := readDetcdBackup(path, size)
	if err != nil {
		return b, nil, err
	}
	if b, err = core.BackupOf(whole); err != nil {
		return b, nil, fmt.Errorf("snapshot %s: %w", path, err)
	}
	return b, func() error { return nil }, nil
}

// StatSnapshot reads a snapshot file, checked as ReadSnapshot checks it,
// for `detcd snapshot status`: what the store restored from it reports.
// etcd's database file is read in passes (mvcc.BucketStat), holding its
// keys and their revisions, not the store.
func StatSnapshot(path string, check HashCheck) (core.BackupStatus, error) {
	bolt, size, err := inspectSnapshot(path, check)
	if err != nil {
		return core.BackupStatus{}, err
	}
	if bolt {
		return statBackup(path)
	}
	whole, err := readDetcdBackup(path, size)
	if err != nil {
		return core.BackupStatus{}, err
	}
	st, err := core.StatBackup(whole)
	if err != nil {
		return st, fmt.Errorf("snapshot %s: %w", path, err)
	}
	return st, nil
}

// inspectSnapshot checks a snapshot file's trailing SHA-256 as check says
// and tells its format: etcd's database file (bolt) or not, and the size
// of its content without the hash.
func inspectSnapshot(path string, check HashCheck) (bolt bool, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, 0, fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, 0, fmt.Errorf("snapshot: %w", err)
	}
	// As etcdutl reads etcd's files, the hash is there when the size is
	// a whole number of 512-byte blocks and 32 bytes.
	size = fi.Size()
	hasHash := size%512 == sha256.Size
	switch {
	case hasHash:
		size -= sha256.Size
		if err := checkHash(f, size); err != nil && check != HashSkipped {
			return false, 0, fmt.Errorf("snapshot %s: %w", path, err)
		}
	case check == HashRequired:
		return false, 0, fmt.Errorf("snapshot %s: no SHA-256 at its end (not written by etcdctl snapshot save?); --skip-hash-check restores it anyway", path)
	}
	head := make([]byte, 64)
	n, _ := f.ReadAt(head, 0) // a short file is told below
	return IsBolt(head[:n]), size, nil
}

// readDetcdBackup reads a backup in detcd's own older format.
func readDetcdBackup(path string, size int64) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if int64(len(b)) < size {
		return nil, fmt.Errorf("snapshot %s: shorter than it was", path)
	}
	b = b[:size]
	if !core.IsBackup(b) {
		return nil, fmt.Errorf("snapshot %s: neither etcd's database file nor a detcd backup", path)
	}
	return b, nil
}

// HashCheck is how a snapshot file's trailing SHA-256 is checked.
type HashCheck int

const (
	// HashRequired: a missing or wrong hash is an error (restore).
	HashRequired HashCheck = iota
	// HashIfPresent: a wrong hash is an error, a missing one is not (status).
	HashIfPresent
	// HashSkipped: neither is (restore --skip-hash-check).
	HashSkipped
)

// checkHash checks that the SHA-256 of f's first size bytes follows them.
func checkHash(f *os.File, size int64) error {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		return err
	}
	want := make([]byte, sha256.Size)
	if _, err := f.ReadAt(want, size); err != nil {
		return err
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return fmt.Errorf("its SHA-256 does not match its content (damaged?)")
	}
	return nil
}
