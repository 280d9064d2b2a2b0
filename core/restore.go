package core

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core/lease"
	"github.com/detcd/detcd/core/mvcc"
)

// Backup is a backup to restore, read as it is written: Head is the
// state without the key space (as BackupHeader encodes it, or a backup's
// bytes begin), WriteKV writes the key space as checkpoint content. A
// restore of etcd's file streams the key space into the new checkpoint
// as it reads it, holding only the keys at or below the compaction point
// (mvcc.BucketWriter).
type Backup struct {
	Head    []byte
	WriteKV func(io.Writer) error
}

// BackupOf is the backup whose bytes are b (the state Maintenance.Snapshot
// streams, without its trailing hash; padding after the state is
// ignored), checked whole first.
func BackupOf(b []byte) (Backup, error) {
	_, _, _, kvAt, kvEnd, err := loadBackup(b)
	if err != nil {
		return Backup{}, err
	}
	return Backup{Head: b[:kvAt], WriteKV: writing(b[kvAt:kvEnd])}, nil
}

// writing is what writes b.
func writing(b []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}
}

// RestoreBackup turns a backup into the first checkpoint of a member of a
// new cluster, as etcdutl snapshot restore does: the key space, leases,
// alarms and cluster version are kept (a backup taken under NOSPACE
// restores a cluster that refuses writes until the alarm is disarmed, as
// etcd's does); the members and raft state are the new cluster's, from
// cfg. The checkpoint is at raft index len(members), term 1, as if each
// member had been added by a conf change, so every member restored from
// the same backup starts from the same log. The checkpoint's content is
// meta followed by what writeKV writes: the backup's key space, streamed
// as it is read, unless opts change it.
func RestoreBackup(b Backup, cfg Config, opts RestoreOptions) (index uint64, meta []byte, writeKV func(io.Writer) error, err error) {
	// etcdutl takes --bump-revision and --mark-compacted only together.
	if opts.BumpRevision < 0 || (opts.BumpRevision > 0) != opts.MarkCompacted {
		return 0, nil, nil, fmt.Errorf("core: restore: --bump-revision must be positive and goes with --mark-compacted")
	}
	if len(cfg.Members) == 0 {
		return 0, nil, nil, fmt.Errorf("core: restore: no members")
	}
	old, leases, kvAt, err := decodeMeta(b.Head)
	if err != nil {
		return 0, nil, nil, err
	}
	if kvAt != len(b.Head) {
		return 0, nil, nil, fmt.Errorf("%w: backup head of %d bytes holds %d of state", ErrCorrupt, len(b.Head), kvAt)
	}
	writeKV = b.WriteKV
	if opts.MarkCompacted {
		if writeKV, err = bumpedKV(b, mvcc.Revision(opts.BumpRevision), !cfg.bug(BugRestoreSkipsMarkCompacted)); err != nil {
			return 0, nil, nil, err
		}
	}
	st := applied{
		index:           uint64(len(cfg.Members)),
		term:            1,
		confState:       &raftpb.ConfState{},
		members:         members{list: slices.Clone(cfg.Members)},
		clusterVersion:  old.clusterVersion,
		downgradeTarget: old.downgradeTarget,
		auth:            old.auth,
		alarms:          old.alarms,
	}
	// The list is kept in id order, as conf changes build it.
	slices.SortFunc(st.members.list, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	for i := range st.members.list {
		// Each member publishes its client URLs when it starts.
		st.members.list[i].ClientURLs = nil
		st.members.list[i].IsLearner = false
		st.confState.Voters = append(st.confState.Voters, st.members.list[i].ID)
	}
	if cfg.bug(BugRestoreDropsLeases) { // planted: the leases are left behind
		leases = nil
	}
	return st.index, encodeMeta(&st, leases), writeKV, nil
}

// bumpedKV loads the backup's key space, raises its revision by bump and
// compacts there (planted: only the bump), and returns what writes it.
func bumpedKV(b Backup, bump mvcc.Revision, compact bool) (func(io.Writer) error, error) {
	var whole bytes.Buffer
	whole.Write(b.Head)
	if err := b.WriteKV(&whole); err != nil {
		return nil, err
	}
	_, _, store, _, _, err := loadBackup(whole.Bytes())
	if err != nil {
		return nil, err
	}
	return writing(bumpAndCompact(store, bump, compact)), nil
}

// RestoreOptions are etcdutl's: BumpRevision raises the revision, so that
// clients that saw later revisions of the lost cluster (a watch cache, a
// Kubernetes informer) do not see revisions repeat; MarkCompacted compacts
// at the new revision, so that their watches from old revisions fail and
// they list again.
type RestoreOptions struct {
	BumpRevision  int64
	MarkCompacted bool
}

func bumpAndCompact(kv *mvcc.Store, bump mvcc.Revision, compact bool) []byte {
	kv.BumpRevision(bump)
	if compact && kv.Rev() > kv.CompactRev() {
		_ = kv.Compact(kv.Rev(), nil) // rev is above the compaction point and not in the future
		for kv.Step(CompactionStepRecordsMax) {
		}
	}
	var b bytes.Buffer
	_, _ = kv.Snapshot().WriteTo(&b) // a bytes.Buffer does not fail
	return b.Bytes()
}

// BackupStatus describes a backup: its revision, compaction point, live
// keys and the HashKV of its latest revision.
type BackupStatus struct {
	Revision, CompactRevision int64
	Keys                      int
	Hash                      uint32
}

// StatBackup reads a backup's status.
func StatBackup(backup []byte) (BackupStatus, error) {
	_, _, kv, _, _, err := loadBackup(backup)
	if err != nil {
		return BackupStatus{}, err
	}
	v := kv.Snapshot()
	h, err := v.HashKV(0)
	if err != nil {
		return BackupStatus{}, err
	}
	res, err := kv.Range([]byte{}, []byte{}, mvcc.RangeOptions{CountOnly: true}) // every key
	if err != nil {
		return BackupStatus{}, err
	}
	return BackupStatus{Revision: int64(kv.Rev()), CompactRevision: int64(kv.CompactRev()), Keys: res.Count, Hash: h.Hash}, nil
}

// BackupContent is what a backup holds that a restore keeps: the raft
// index it was taken at, its revisions, its live keys (in key order) and
// its leases (in id order).
type BackupContent struct {
	Index                     uint64
	Revision, CompactRevision int64
	KVs                       []*mvccpb.KeyValue
	Leases                    []ExchangeLease
}

// ReadBackupContent reads a backup's content, for checks that compare it
// with the state it should hold.
func ReadBackupContent(backup []byte) (BackupContent, error) {
	st, ls, kv, _, _, err := loadBackup(backup)
	if err != nil {
		return BackupContent{}, err
	}
	res, err := kv.Range([]byte{}, []byte{}, mvcc.RangeOptions{}) // every key
	if err != nil {
		return BackupContent{}, err
	}
	c := BackupContent{Index: st.index, Revision: int64(kv.Rev()), CompactRevision: int64(kv.CompactRev()), KVs: res.KVs}
	for _, l := range ls {
		c.Leases = append(c.Leases, ExchangeLease{ID: int64(l.ID), TTL: l.TTL, RemainingTTL: l.RemainingTTL})
	}
	slices.SortFunc(c.Leases, func(a, b ExchangeLease) int { return cmp.Compare(a.ID, b.ID) })
	return c, nil
}

// loadBackup decodes a backup's state and loads its key space;
// backup[kvAt:kvEnd] is the key space's encoding (padding after it is
// ignored).
func loadBackup(backup []byte) (st applied, ls []*lease.Lease, kv *mvcc.Store, kvAt, kvEnd int, err error) {
	st, ls, kvAt, err = decodeMeta(backup)
	if err != nil {
		return st, nil, nil, 0, 0, err
	}
	kv, kvBytes, err := mvcc.Load(backup[kvAt:])
	if err != nil {
		return st, nil, nil, 0, 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return st, ls, kv, kvAt, kvAt + kvBytes, nil
}

// IsBackup reports whether b starts as a backup in detcd's own format
// does, the format Maintenance.Snapshot streamed before etcd's.
func IsBackup(b []byte) bool {
	_, _, _, err := decodeMeta(b)
	return err == nil
}
