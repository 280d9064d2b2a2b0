package core

import (
	"fmt"

	"github.com/detcd/detcd/core/internal/planted"
)

// Planted bugs, for proving that the simulator's checkers bite. They exist
// only in builds with the detcdbugs tag; Config.Validate refuses them
// elsewhere.
const (
	// BugAckBeforeFsync treats a log write as durable as soon as it is
	// handed to the driver: raft may commit, and the member acknowledge,
	// writes that a crash then loses.
	BugAckBeforeFsync = "ack-before-fsync"
	// BugStaleRead serves linearizable reads from the member's own state
	// without a ReadIndex round, so a partitioned member answers stale.
	BugStaleRead = "stale-read"
	// BugVoteNoFsync does not sync a hard state whose vote changed in
	// the same term: a crash forgets the vote, and the member may vote
	// twice in one term.
	BugVoteNoFsync = "vote-no-fsync"
	// BugReadBeforeApplied answers a linearizable read once its read
	// index is known, before the member has applied up to it.
	BugReadBeforeApplied = "read-before-applied"
	// BugReadBeforeTermApplied asks for a read index before the member
	// applied an entry of its own term, when its commit index may lag.
	BugReadBeforeTermApplied = "read-before-term-applied"
	// BugLeaseAttachLost does not put a key written with a lease on the
	// lease: revoking the lease leaves the key.
	BugLeaseAttachLost = "lease-attach-lost"
	// BugRemovedKeepsRunning lets a member removed from the cluster
	// carry on instead of stopping.
	BugRemovedKeepsRunning = "member-removed-keeps-running"
	// BugCheckpointDropsAuth writes checkpoints (and snapshots for
	// peers) without the auth store.
	BugCheckpointDropsAuth = "checkpoint-drops-auth"
	// BugEntriesNoFsync writes new log entries without asking the driver
	// to sync them before they count as persisted.
	BugEntriesNoFsync = "entries-no-fsync"

	// The subpackages' planted bugs (core/internal/planted).

	// BugMVCCTombstoneVisible reads a deleted key as present.
	BugMVCCTombstoneVisible = planted.MVCCTombstoneVisible
	// BugMVCCPrevKVOffByOne gives an event's own key-value as its prev_kv.
	BugMVCCPrevKVOffByOne = planted.MVCCPrevKVOffByOne
	// BugWatchCatchUpSkipLast leaves a catch-up batch's last revision out.
	BugWatchCatchUpSkipLast = planted.WatchCatchUpSkipLast
	// BugWatchNotifyFirstOnly sends a synced watcher only the first of a
	// transaction's events for it.
	BugWatchNotifyFirstOnly = planted.WatchNotifyFirstOnly
	// BugWatchProgressAhead answers a progress request with the next
	// revision, claiming one not yet delivered.
	BugWatchProgressAhead = planted.WatchProgressAhead
	// BugLeaseRenewNoRefresh answers a keep-alive without moving the
	// lease's expiry.
	BugLeaseRenewNoRefresh = planted.LeaseRenewNoRefresh
	// BugLeaseRevokeKeepsKeys revokes a lease without deleting its keys.
	BugLeaseRevokeKeepsKeys = planted.LeaseRevokeKeepsKeys
	// BugLeaseExpiresEarly ends every lease a second before its TTL.
	BugLeaseExpiresEarly = planted.LeaseExpiresEarly
	// BugWALSyncSkipped writes the WAL but never fsyncs it.
	BugWALSyncSkipped = planted.WALSyncSkipped
	// BugWALHardStateTermOnly saves a hard state only when its term
	// changes: a vote (or commit) in the same term is lost.
	BugWALHardStateTermOnly = planted.WALHardStateTermOnly
	// BugWALCutNoSync closes a full segment without syncing its tail.
	BugWALCutNoSync = planted.WALCutNoSync
)

// PlantedBugs lists the bugs a detcdbugs build can plant.
var PlantedBugs = []string{
	BugAckBeforeFsync, BugStaleRead,
	BugEntriesNoFsync, BugVoteNoFsync, BugReadBeforeApplied, BugReadBeforeTermApplied,
	BugLeaseAttachLost, BugRemovedKeepsRunning, BugCheckpointDropsAuth,
	BugMVCCTombstoneVisible, BugMVCCPrevKVOffByOne,
	BugWatchCatchUpSkipLast, BugWatchNotifyFirstOnly, BugWatchProgressAhead,
	BugLeaseRenewNoRefresh, BugLeaseRevokeKeepsKeys, BugLeaseExpiresEarly,
	BugWALSyncSkipped, BugWALHardStateTermOnly, BugWALCutNoSync,
}

func validateBug(name string) error {
	if name == "" {
		return nil
	}
	if !bugsEnabled {
		return fmt.Errorf("core: planted bug %q needs a build with -tags detcdbugs", name)
	}
	for _, b := range PlantedBugs {
		if b == name {
			return nil
		}
	}
	return fmt.Errorf("core: unknown planted bug %q", name)
}

func (n *Node) bug(name string) bool { return bugsEnabled && n.cfg.PlantedBug == name }

// PlantedBugsAvailable reports whether this build can plant bugs.
func PlantedBugsAvailable() bool { return bugsEnabled }
