package server

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/disk"
	"github.com/detcd/detcd/diskfs"
)

// Restore makes cfg.DataDir the data directory of the member cfg names in
// a new cluster (--name, --initial-cluster, --initial-cluster-token,
// --initial-advertise-peer-urls) whose state is the snapshot file at path,
// as `etcdutl snapshot restore` does. The file is what
// `etcdctl snapshot save` writes from detcd: the state, padded, and its
// SHA-256, checked unless opts.SkipHashCheck. Every member of the new cluster is
// restored from the same file, then started with the same flags and
// --initial-cluster-state new.
func Restore(cfg Config, path string, opts RestoreOptions) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	state, err := readSnapshot(path, opts.SkipHashCheck)
	if err != nil {
		return err
	}
	ccfg, err := cfg.coreConfig(0, cfg.Logger)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	ropts := core.RestoreOptions{BumpRevision: opts.BumpRevision, MarkCompacted: opts.MarkCompacted}
	if err := disk.Restore(diskfs.New(cfg.DataDir), ".", ccfg, state, ropts, disk.Options{}); err != nil {
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

// SnapshotStatus reads a snapshot file's status, checking its hash.
func SnapshotStatus(path string) (core.BackupStatus, int64, error) {
	state, err := readSnapshot(path, false)
	if err != nil {
		return core.BackupStatus{}, 0, err
	}
	st, err := core.StatBackup(state)
	if err != nil {
		return st, 0, fmt.Errorf("snapshot %s: %w", path, err)
	}
	return st, int64(len(state)) + sha256.Size, nil
}

// readSnapshot returns a snapshot file's state, without its hash.
func readSnapshot(path string, skipHashCheck bool) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	// As with etcd's files, the hash is there when the size is a whole
	// number of 512-byte blocks and 32 bytes.
	state := b
	switch {
	case len(b)%512 == sha256.Size:
		state = b[:len(b)-sha256.Size]
		if h := sha256.Sum256(state); !bytes.Equal(h[:], b[len(state):]) && !skipHashCheck {
			return nil, fmt.Errorf("snapshot %s: its SHA-256 does not match its content (damaged?)", path)
		}
	case !skipHashCheck:
		return nil, fmt.Errorf("snapshot %s: no SHA-256 at its end (not written by etcdctl snapshot save?); --skip-hash-check restores it anyway", path)
	}
	return state, nil
}
