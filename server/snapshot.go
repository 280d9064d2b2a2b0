package server

import (
	"log/slog"
	"os"
	"path/filepath"

	"github.com/detcd/detcd/grpcsvc"
)

// removeSnapshotTemps removes the temporary files of snapshots that a
// crash interrupted: no stream is open before the server starts.
func removeSnapshotTemps(dataDir string, log *slog.Logger) {
	left, _ := filepath.Glob(filepath.Join(dataDir, grpcsvc.SnapshotTempPrefix+"*"))
	for _, dir := range left {
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("removing a snapshot's temporary files", "dir", dir, "err", err)
			continue
		}
		log.Info("removed the temporary files of an interrupted snapshot", "dir", dir)
	}
}
