package server

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/disk"
	"github.com/detcd/detcd/diskfs"
	"github.com/detcd/detcd/etcddb"
)

// Restore makes cfg.DataDir the data directory of the member cfg names in
// a new cluster (--name, --initial-cluster, --initial-cluster-token,
// --initial-advertise-peer-urls) whose state is the snapshot file at path,
// as `etcdutl snapshot restore` does. The file is etcd's database file
// and its SHA-256, as `etcdctl snapshot save` writes from etcd or detcd
// (the hash is checked unless opts.SkipHashCheck), or a stopped etcd
// member's member/snap/db (which has none), or a backup in detcd's older
// format of its own. Every member of the new cluster is restored from
// the same file, then started with the same flags and
// --initial-cluster-state new. On an error no data directory is left.
func Restore(cfg Config, path string, opts RestoreOptions) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	check := hashRequired
	if opts.SkipHashCheck {
		check = hashSkipped
	}
	state, err := readSnapshot(path, check)
	if err != nil {
		return err
	}
	ccfg, err := cfg.coreConfig(0, cfg.Logger)
	if err != nil {
		return err
	}
	_, statErr := os.Stat(cfg.DataDir)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	ropts := core.RestoreOptions{BumpRevision: opts.BumpRevision, MarkCompacted: opts.MarkCompacted}
	if err := disk.Restore(diskfs.New(cfg.DataDir), ".", ccfg, state, ropts, disk.Options{}); err != nil {
		if errors.Is(statErr, fs.ErrNotExist) {
			// Leave no partial data directory behind.
			os.RemoveAll(cfg.DataDir)
		}
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	return nil
}

// RestoreOptions are etcdutl snapshot restore's: --skip-hash-check,
// --bump-revision, --mark-compacted.
type RestoreOptions struct {
	SkipHashCheck bool
	BumpRevision  int64
	MarkCompacted bool
}

// SnapshotStatus reads a snapshot file's status, checking its hash if it
// has one (a member's database file has none).
func SnapshotStatus(path string) (core.BackupStatus, int64, error) {
	state, err := readSnapshot(path, hashIfPresent)
	if err != nil {
		return core.BackupStatus{}, 0, err
	}
	st, err := core.StatBackup(state)
	if err != nil {
		return st, 0, fmt.Errorf("snapshot %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return st, 0, fmt.Errorf("snapshot: %w", err)
	}
	return st, fi.Size(), nil
}

// readSnapshot returns a snapshot file's state as a detcd backup. The
// file is etcd's database file, as `etcdctl snapshot save` writes from
// etcd or detcd, or as a stopped etcd member's member/snap/db is, or a
// backup in detcd's own format from before detcd wrote etcd's: the format
// is told by bolt's magic number.
func readSnapshot(path string, check hashCheck) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	// As etcdutl reads etcd's files, the hash is there when the size is
	// a whole number of 512-byte blocks and 32 bytes.
	size := fi.Size()
	hasHash := size%512 == sha256.Size
	switch {
	case hasHash:
		size -= sha256.Size
		if err := checkHash(f, size); err != nil && check != hashSkipped {
			return nil, fmt.Errorf("snapshot %s: %w", path, err)
		}
	case check == hashRequired:
		return nil, fmt.Errorf("snapshot %s: no SHA-256 at its end (not written by etcdctl snapshot save?); --skip-hash-check restores it anyway", path)
	}
	head := make([]byte, 64)
	n, _ := f.ReadAt(head, 0) // a short file is told below
	if etcddb.IsBolt(head[:n]) {
		return etcddb.ReadBackup(path)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if !core.IsBackup(b) {
		return nil, fmt.Errorf("snapshot %s: neither etcd's database file nor a detcd backup", path)
	}
	return b, nil
}

// hashCheck is how a snapshot file's trailing SHA-256 is checked.
type hashCheck int

const (
	// hashRequired: a missing or wrong hash is an error (restore).
	hashRequired hashCheck = iota
	// hashIfPresent: a wrong hash is an error, a missing one is not (status).
	hashIfPresent
	// hashSkipped: neither is (restore --skip-hash-check).
	hashSkipped
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
