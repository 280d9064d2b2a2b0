// Package planted names the planted bugs that live in core's
// subpackages (mvcc, watch, lease, wal), so that core can list them and
// each subpackage can check its own without importing core. A planted bug
// is a one-to-five-line variant of a real line, next to it, guarded by
// Enabled && x.Bug == Name: Enabled is a false constant outside builds
// with the detcdbugs tag, so the compiler removes every variant there.
package planted

// The subpackages' planted bugs; core/bugs.go documents what each does.
const (
	MVCCTombstoneVisible     = "mvcc-tombstone-visible"
	MVCCPrevKVOffByOne       = "mvcc-prevkv-off-by-one"
	MVCCCheckpointDropsLast  = "mvcc-checkpoint-drops-last"
	MVCCRangeLimitOffByOne   = "mvcc-range-limit-off-by-one"
	MVCCCompactKeepsTooFew   = "mvcc-compact-keeps-too-few"
	MVCCHashSkipsAfterDefrag = "mvcc-hash-skips-after-defrag"
	MVCCExportDropsNewest    = "mvcc-export-drops-newest"
	WatchCatchUpSkipLast     = "watch-catchup-skip-last"
	WatchNotifyFirstOnly     = "watch-notify-first-only"
	WatchProgressAhead       = "watch-progress-ahead"
	LeaseRenewNoRefresh      = "lease-renew-no-refresh"
	LeaseRevokeKeepsKeys     = "lease-revoke-keeps-keys"
	LeaseExpiresEarly        = "lease-expires-early"
	LeasePromoteFullTTL      = "lease-promote-full-ttl"
	WALSyncSkipped           = "wal-sync-skipped"
	WALCutNoSync             = "wal-cut-no-sync"
	WALSyncBeforeFlush       = "wal-sync-before-flush"
)
