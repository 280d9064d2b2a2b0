package server

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"

	"github.com/detcd/detcd/disk"
	"github.com/detcd/detcd/diskfs"
)

// Restore makes cfg.DataDir the data directory of the member cfg names in
// a new cluster (--name, --initial-cluster, --initial-cluster-token,
// --initial-advertise-peer-urls) whose state is the snapshot file at path,
// as `etcdutl snapshot restore` does. The file is what
// `etcdctl snapshot save` writes from detcd: the state, padded, and its
// SHA-256, checked unless skipHashCheck. Every member of the new cluster is
// restored from the same file, then started with the same flags and
// --initial-cluster-state new.
func Restore(cfg Config, path string, skipHashCheck bool) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	// As with etcd's files, the hash is there when the size is a whole
	// number of 512-byte blocks and 32 bytes.
	state := b
	switch {
	case len(b)%512 == sha256.Size:
		state = b[:len(b)-sha256.Size]
		if h := sha256.Sum256(state); !bytes.Equal(h[:], b[len(state):]) && !skipHashCheck {
			return fmt.Errorf("snapshot %s: its SHA-256 does not match its content (damaged?)", path)
		}
	case !skipHashCheck:
		return fmt.Errorf("snapshot %s: no SHA-256 at its end (not written by etcdctl snapshot save?); --skip-hash-check restores it anyway", path)
	}
	ccfg, err := cfg.coreConfig(0, cfg.Logger)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := disk.Restore(diskfs.New(cfg.DataDir), ".", ccfg, state, disk.Options{}); err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	return nil
}
