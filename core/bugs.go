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
	// BugReadBeforeApplied answers a linearizable read once its read
	// index is known, before the member has applied up to it.
	BugReadBeforeApplied = "read-before-applied"
	// BugRestartAppliesUncommitted replays the whole log at a restart,
	// entries past the persisted commit index too: a new leader may
	// replace them.
	BugRestartAppliesUncommitted = "restart-applies-uncommitted"
	// BugLeaseAttachLost does not put a key written with a lease on the
	// lease: revoking the lease leaves the key.
	BugLeaseAttachLost = "lease-attach-lost"
	// BugCheckpointDropsAuth writes checkpoints (and snapshots for
	// peers) without the auth store.
	BugCheckpointDropsAuth = "checkpoint-drops-auth"
	// BugSnapshotKeepsMembers installs a snapshot from the leader but
	// keeps the member list the member had before it.
	BugSnapshotKeepsMembers = "snapshot-keeps-members"
	// BugCompareGreaterOrEqual evaluates a transaction's GREATER compare
	// as greater or equal.
	BugCompareGreaterOrEqual = "compare-greater-or-equal"
	// BugEntriesNoFsync writes new log entries without asking the driver
	// to sync them before they count as persisted.
	BugEntriesNoFsync = "entries-no-fsync"
	// BugPutDivergesEvenMember makes members with an even id store every
	// put's value empty: their key space diverges silently from the
	// others' at the same revisions, as undetected corruption would.
	BugPutDivergesEvenMember = "put-diverges-even-member"
	// BugCorruptCompactRevMismatch makes the initial corruption check
	// count a peer's hash at another compaction revision as a mismatch:
	// a restarting member behind a compaction refuses to start (package
	// corrupt).
	BugCorruptCompactRevMismatch = "corrupt-compact-rev-mismatch"
	// BugAuthPrevKVUnchecked lets a put with prev_kv through on write
	// permission alone: the previous value is read without read
	// permission.
	BugAuthPrevKVUnchecked = "auth-prevkv-unchecked"
	// BugAuthTxnNestedUnchecked checks a transaction's compares and ops
	// but lets its nested transactions through unchecked.
	BugAuthTxnNestedUnchecked = "auth-txn-nested-unchecked"
	// BugAuthLeaseRevokeUnchecked lets any user revoke a lease, whatever
	// keys it holds: its keys are deleted without write permission.
	BugAuthLeaseRevokeUnchecked = "auth-lease-revoke-unchecked"
	// BugAuthReadLocal answers reads of the auth store (user and role
	// get and list, auth status) from the member's own store at once,
	// without raft: a member behind, or cut off, answers stale.
	BugAuthReadLocal = "auth-read-local"
	// BugLockSkipsWait has the Lock service (grpcsvc) grant a lock as
	// soon as the caller's key is in line, without waiting for the keys
	// before it to be deleted: two holders at once.
	BugLockSkipsWait = "lock-skips-wait"
	// BugSnapshotLoadOnLoop has the driver read back and decode a
	// snapshot from the leader on the member's loop, as detcd did before
	// issue 18:
	// for as long as that takes, the member answers nothing, heartbeats
	// included (driver.Step.HoldsLoop).
	BugSnapshotLoadOnLoop = "snapshot-load-on-loop"

	// The subpackages' planted bugs (core/internal/planted).

	// BugMVCCTombstoneVisible reads a deleted key as present.
	BugMVCCTombstoneVisible = planted.MVCCTombstoneVisible
	// BugMVCCPrevKVOffByOne gives an event's own key-value as its prev_kv.
	BugMVCCPrevKVOffByOne = planted.MVCCPrevKVOffByOne
	// BugMVCCCheckpointDropsLast writes checkpoints (and snapshots)
	// without the changes of their newest revision.
	BugMVCCCheckpointDropsLast = planted.MVCCCheckpointDropsLast
	// BugMVCCRangeLimitOffByOne reads one key fewer than a range's limit
	// asks for.
	BugMVCCRangeLimitOffByOne = planted.MVCCRangeLimitOffByOne
	// BugMVCCCompactKeepsTooFew drops, at a compaction, a key's value at
	// the compaction revision when newer values exist: reads at the
	// compaction revision miss it.
	BugMVCCCompactKeepsTooFew = planted.MVCCCompactKeepsTooFew
	// BugMVCCHashSkipsAfterDefrag leaves, once the member has been
	// defragmented, the first revision out of HashKV's hash: that
	// member's hashes differ from the others' at the same revisions.
	BugMVCCHashSkipsAfterDefrag = planted.MVCCHashSkipsAfterDefrag
	// BugMVCCExportDropsNewest leaves the newest revision's records out
	// of the key bucket a Snapshot streams: the backup says revision N
	// but holds the keys of N-1.
	BugMVCCExportDropsNewest = planted.MVCCExportDropsNewest
	// BugRestoreDropsLeases restores a backup's key space without its
	// leases: keys stay attached to leases the restored cluster lacks.
	BugRestoreDropsLeases = "restore-drops-leases"
	// BugRestoreSkipsMarkCompacted restores with --bump-revision but
	// leaves --mark-compacted undone: the revisions the lost cluster
	// made after the backup read as the backup's state, and watches
	// resume across the restore as if nothing was lost.
	BugRestoreSkipsMarkCompacted = "restore-skips-mark-compacted"
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
	// BugLeasePromoteFullTTL has a new leader restart every lease at its
	// full TTL, as if no checkpoint had recorded what was left of it.
	BugLeasePromoteFullTTL = planted.LeasePromoteFullTTL
	// BugWALSyncSkipped writes the WAL but never fsyncs it.
	BugWALSyncSkipped = planted.WALSyncSkipped
	// BugWALCutNoSync closes a full segment without syncing its tail.
	BugWALCutNoSync = planted.WALCutNoSync
	// BugWALSyncBeforeFlush has the log writer fsync before it writes the
	// turn's records out, so a write is acknowledged before it is durable
	// (the next turn's fsync makes it so). It was planted in the WAL's
	// Sync, where it became harmless once every driver wrote out before
	// syncing.
	BugWALSyncBeforeFlush = planted.WALSyncBeforeFlush
)

// PlantedBugs lists the bugs a detcdbugs build can plant.
var PlantedBugs = []string{
	BugAckBeforeFsync, BugStaleRead,
	BugEntriesNoFsync, BugRestartAppliesUncommitted, BugReadBeforeApplied,
	BugLeaseAttachLost, BugCheckpointDropsAuth, BugSnapshotKeepsMembers, BugSnapshotLoadOnLoop,
	BugMVCCTombstoneVisible, BugMVCCPrevKVOffByOne, BugMVCCCheckpointDropsLast,
	BugCompareGreaterOrEqual, BugMVCCRangeLimitOffByOne, BugMVCCCompactKeepsTooFew,
	BugMVCCHashSkipsAfterDefrag, BugMVCCExportDropsNewest, BugRestoreDropsLeases, BugRestoreSkipsMarkCompacted,
	BugWatchCatchUpSkipLast, BugWatchNotifyFirstOnly, BugWatchProgressAhead,
	BugLeaseRenewNoRefresh, BugLeaseRevokeKeepsKeys, BugLeaseExpiresEarly, BugLeasePromoteFullTTL,
	BugWALSyncSkipped, BugWALCutNoSync, BugWALSyncBeforeFlush,
	BugPutDivergesEvenMember, BugCorruptCompactRevMismatch,
	BugAuthPrevKVUnchecked, BugAuthTxnNestedUnchecked, BugAuthLeaseRevokeUnchecked, BugAuthReadLocal,
	BugLockSkipsWait,
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

func (n *Node) bug(name string) bool { return n.cfg.bug(name) }

// bug reports whether the configuration plants bug name, for code that
// runs before a node exists (a restore).
func (c *Config) bug(name string) bool { return bugsEnabled && c.PlantedBug == name }

// PlantedBugsAvailable reports whether this build can plant bugs.
func PlantedBugsAvailable() bool { return bugsEnabled }
