package core

import (
	"cmp"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core/mvcc"
)

// RestoreBackup turns a backup (the state Maintenance.Snapshot streams,
// without its trailing hash; padding after the state is ignored) into the first checkpoint of a member of a
// new cluster, as etcdutl snapshot restore does: the key space, leases
// and cluster version are kept; the members, alarms and raft state are the
// new cluster's, from cfg. The checkpoint is at raft index len(members),
// term 1, as if each member had been added by a conf change, so every
// member restored from the same backup starts from the same log.
func RestoreBackup(backup []byte, cfg Config) (index uint64, checkpoint []byte, err error) {
	old, leases, kvAt, err := decodeMeta(backup)
	if err != nil {
		return 0, nil, err
	}
	_, kvBytes, err := mvcc.Load(backup[kvAt:])
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if len(cfg.Members) == 0 {
		return 0, nil, fmt.Errorf("core: restore: no members")
	}
	st := applied{
		index:          uint64(len(cfg.Members)),
		term:           1,
		confState:      &raftpb.ConfState{},
		members:        members{list: slices.Clone(cfg.Members)},
		clusterVersion: old.clusterVersion,
		auth:           old.auth,
	}
	// The list is kept in id order, as conf changes build it.
	slices.SortFunc(st.members.list, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	for i := range st.members.list {
		// Each member publishes its client URLs when it starts.
		st.members.list[i].ClientURLs = nil
		st.members.list[i].IsLearner = false
		st.confState.Voters = append(st.confState.Voters, st.members.list[i].ID)
	}
	meta := encodeMeta(&st, leases)
	return st.index, append(meta, backup[kvAt:kvAt+kvBytes]...), nil
}
