package sim

import (
	"fmt"
	"math/rand/v2"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/core/wal/memfs"
	"github.com/detcd/detcd/disk"
)

// Restore epochs: in some worlds an operator now and then does what a
// disaster recovery does with the whole cluster: it stops every member,
// restores each one's data directory from its newest backup (disk.Restore,
// the code under `detcd snapshot restore`) with etcd's --bump-revision
// and --mark-compacted, so that no client sees a revision twice and every
// watch from before fails as compacted, and starts them again as a new
// cluster (a new cluster id, as etcd's --initial-cluster-token makes).
// The workload carries on against it. Each restore starts an epoch; the
// checkers know where each began (checks_epoch.go).

// restoreEveryMinUs and restoreEveryMaxUs bound a world's mean time
// between restores.
const (
	restoreEveryMinUs = 8_000_000
	restoreEveryMaxUs = 30_000_000
)

// restoreBumpMin and restoreBumpMax bound the --bump-revision an operator
// gives: as etcd's recovery guide advises, far more than the revisions
// the lost cluster can have made since the backup.
const (
	restoreBumpMin = 1_000_000
	restoreBumpMax = 1_000_000_000
)

// restoredClusterIDBase is the restored clusters' ids: one more for each
// epoch, none of them the first cluster's.
const restoredClusterIDBase = 0x5e570e00

// restores reports whether the world's operators restore the cluster: as
// the option says, or, left empty, for a quarter of the seeds with
// operators (a hash of the seed, so no component's draws shift). Without
// operators there are no backups to restore from.
func (o Options) restores() bool {
	switch o.Restore {
	case "on":
		return o.Operators != 0
	case "off":
		return false
	}
	return o.Operators > 0 && seedHash(o.Seed^0x7e5704e)%4 == 0
}

func (s Settings) restoreString() string {
	if s.RestoreEveryUs == 0 {
		return ""
	}
	return fmt.Sprintf("; restore every ~%dus", s.RestoreEveryUs)
}

// newRestoreRand is the restores' own PRNG, apart from the root's, so
// that worlds without restores draw as they did before there were any.
func newRestoreRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seedHash(seed^0x7e5704e), 0x7e57))
}

// heldBackup is the newest backup an operator saved: the file `etcdctl
// snapshot save` writes, taken in epoch.
type heldBackup struct {
	file  []byte
	epoch int
}

// keepBackup saves a snapshot stream that ended well as the world's
// newest backup, as an operator keeps its latest `etcdctl snapshot save`.
func (w *World) keepBackup(ss *snapshotStream) {
	if w.settings.RestoreEveryUs == 0 {
		return
	}
	if file, why := snapshotFile(ss.chunks); why == "" {
		w.backup = &heldBackup{file: file, epoch: w.epoch}
	}
}

// clusterID is the current epoch's cluster id, which members added at
// runtime join: the first as etcd derives it from its members' ids.
func (w *World) clusterID() uint64 {
	if w.epoch == 0 {
		return clusterIDOf(w.opts.Members)
	}
	return restoredClusterIDBase + uint64(w.epoch)
}

// scheduleRestores restores the cluster now and then in the safety phase.
func (w *World) scheduleRestores() {
	every := w.settings.RestoreEveryUs
	if every == 0 {
		return
	}
	w.after(every/2+w.restoreRng.Int64N(every+1), func() {
		if w.stopping {
			return
		}
		w.maybeRestore()
		w.scheduleRestores()
	})
}

// maybeRestore restores the cluster from the newest backup, if the
// operator has one from the running cluster and no membership change is
// under way (an operator would not restore in the middle of one).
func (w *World) maybeRestore() {
	b := w.backup
	if b == nil || b.epoch != w.epoch || w.faults.changing {
		w.trace.logf(w.now, "restore: skipped (no backup of this cluster, or a membership change under way)")
		return
	}
	backup, content, err := readSnapshot(b.file)
	if err != nil {
		w.checks.fail("restore: the backup does not read: %v", err)
		return
	}
	bump := restoreBumpMin + w.restoreRng.Int64N(restoreBumpMax-restoreBumpMin+1)
	w.checks.scanHistory() // what the stopping cluster applied, for the checks of its epoch
	ms := w.live()
	for _, m := range ms {
		m.crash(false) // the operator stops every member
	}
	w.epoch++
	p := restorePoint{epoch: w.epoch, at: w.now, backupRev: content.Revision, bumped: content.Revision + bump, content: content}
	w.trace.logf(w.now, "restore: epoch %d, cluster %x, from the backup at revision %d (index %d), --bump-revision %d --mark-compacted",
		w.epoch, w.clusterID(), content.Revision, content.Index, bump)
	w.note(clusterColumn, rowPhase, fmt.Sprintf("restore from the backup at revision %d: epoch %d", content.Revision, w.epoch))
	w.checks.restored(p)
	members := w.restoreMembers()
	for _, m := range ms {
		if err := m.restoreData(members, backup, bump); err != nil {
			w.checks.fail("restore: %s: %v", m.name, err)
			m.refused = true
		}
	}
	for _, m := range ms {
		if m.refused {
			continue
		}
		if err := m.start(); err != nil {
			m.refused = true
			w.checks.fail("restore: %v", err)
			continue
		}
		w.checks.restoredMember(m, p)
	}
}

// restoreData replaces m's data directory with one restored from backup
// for the new cluster of members: its disk damage goes with the old one.
func (m *member) restoreData(members []core.Member, backup []byte, bump int64) error {
	m.fs = memfs.New()
	m.fs.SectorBytes = wal.SectorBytes
	m.joining, m.learner, m.initial = false, false, members
	m.broken, m.refused, m.garbage, m.garbageArmed, m.durableLast = 0, false, nil, 0, 0
	cfg, err := m.config()
	if err != nil {
		return err
	}
	b, err := core.BackupOf(backup)
	if err != nil {
		return err
	}
	opts := core.RestoreOptions{BumpRevision: bump, MarkCompacted: true}
	return disk.Restore(m.fs, "data", cfg, b, opts, disk.Options{SegmentBytes: m.segmentBytes})
}

// sameEpoch reports whether something sent in epoch e still has a
// cluster to reach: a message of a cluster that was restored away is
// refused, as etcd's transport refuses another cluster id.
func (w *World) sameEpoch(e int) bool { return w.epoch == e }
