package server

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

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
// format of its own. The key space is streamed from the file into the
// new member's checkpoint, never held (with opts.MarkCompacted it is, to
// compact it).
// Every member of the new cluster is restored from the same file, then
// started with the same flags and --initial-cluster-state new. On an
// error no data directory is left (in one that was there, no member
// directory).
func Restore(cfg Config, path string, opts RestoreOptions) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	check := etcddb.HashRequired
	if opts.SkipHashCheck {
		check = etcddb.HashSkipped
	}
	backup, done, err := etcddb.OpenSnapshot(path, check)
	if err != nil {
		return err
	}
	defer done()
	ccfg, err := cfg.CoreConfig(0, cfg.Logger)
	if err != nil {
		return err
	}
	member := filepath.Join(cfg.DataDir, "member")
	_, statErr := os.Stat(cfg.DataDir)
	_, memberErr := os.Stat(member)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	ropts := core.RestoreOptions{BumpRevision: opts.BumpRevision, MarkCompacted: opts.MarkCompacted}
	if err := disk.Restore(diskfs.New(cfg.DataDir), ".", ccfg, backup, ropts, disk.Options{}); err != nil {
		// Leave no partial data directory behind: a bucket entry that
		// does not decode fails the restore halfway through writing.
		switch {
		case errors.Is(statErr, fs.ErrNotExist):
			os.RemoveAll(cfg.DataDir)
		case errors.Is(memberErr, fs.ErrNotExist):
			os.RemoveAll(member)
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
// has one (a member's database file has none). etcd's database file is
// read in passes that hold its keys and their revisions, not the store
// (etcddb.StatSnapshot): no scratch copy, no heap the size of the store.
func SnapshotStatus(path string) (core.BackupStatus, int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return core.BackupStatus{}, 0, fmt.Errorf("snapshot: %w", err)
	}
	st, err := etcddb.StatSnapshot(path, etcddb.HashIfPresent)
	if err != nil {
		return st, 0, err
	}
	return st, fi.Size(), nil
}
