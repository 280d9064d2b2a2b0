package core

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/detcd/detcd/core/lease"
)

// Defaults follow etcd 3.7 where etcd has the setting.
const (
	DefaultElectionTicks          = 10
	DefaultHeartbeatTicks         = 1
	DefaultMaxRequestBytes        = 1536 * 1024
	DefaultMaxTxnOps              = 128
	DefaultQuotaBackendBytes      = 2 << 30
	DefaultSnapshotCount          = 10000
	DefaultSnapshotCatchUpEntries = 5000
	// DefaultCheckpointMinBytes is how much log must pile up after a
	// checkpoint before the next one: checkpoints dump the whole key space,
	// so they are written only when the log since the last one is at least
	// this big and at least as big as that checkpoint.
	DefaultCheckpointMinBytes = 64 << 20
	// DefaultStopCheckpointMinBytes is how much log applied since the
	// last checkpoint makes a clean stop write one (Node.StopCheckpoint):
	// applying 8 MiB of puts again at a restart takes about 0.1 s.
	DefaultStopCheckpointMinBytes = 8 << 20
	// DefaultRequestTimeoutTicks is etcd's 5 s request timeout at 100 ms
	// ticks; drivers set it from their tick length.
	DefaultRequestTimeoutTicks = 50
	// CompactionStepRecordsMax is how many records physical compaction
	// and defragmentation visit per StepBackground (mvcc.Store.Step's units), so
	// that a large compaction never stalls the loop: a request waits for
	// one such step at most, well under a millisecond. etcd deletes 1000
	// revisions per batch of its compaction by default, too.
	CompactionStepRecordsMax = 1000
	// WatchCatchUpBudget is how many stored events unsynced watchers visit
	// per Ready, so catching up slow watchers never stalls the loop.
	WatchCatchUpBudget = 20000
	// DefaultWatchProgressNotifyTicks is etcd's 10-minute progress
	// notification interval at 100 ms ticks; drivers set it from their
	// tick length.
	DefaultWatchProgressNotifyTicks = 6000
	// DefaultTickMs is etcd's default heartbeat interval, its tick.
	DefaultTickMs = 100
	// DefaultLeaseRevokesPerSecond is etcd's lease expiry rate limit.
	DefaultLeaseRevokesPerSecond = 1000
	// leaseExpiryRetryMs is how long an expired lease's revoke may be in
	// flight before the leader proposes it again (etcd: 3 s).
	leaseExpiryRetryMs = 3000
)

// Config is one member's configuration: everything that decides its
// behaviour, printable and storable in a seed file.
type Config struct {
	// ID is this member's id; ClusterID the cluster's.
	ID        uint64
	ClusterID uint64
	// Members are the cluster's members at bootstrap.
	Members []Member
	// ClusterVersion is the version the leader sets for a new cluster, as
	// etcd does ("3.7.0"); empty sets none.
	ClusterVersion string
	// Join: this member joins an existing cluster (etcd's
	// --initial-cluster-state existing) instead of bootstrapping one.
	Join bool

	ElectionTicks  int
	HeartbeatTicks int
	// RequestTimeoutTicks bounds how long a proposal or read may wait.
	RequestTimeoutTicks int

	MaxRequestBytes        int
	MaxTxnOps              int
	QuotaBackendBytes      int64
	SnapshotCount          uint64
	SnapshotCatchUpEntries uint64
	CheckpointMinBytes     int64
	StopCheckpointMinBytes int64

	AutoCompaction AutoCompaction
	// WatchProgressNotifyTicks is the interval of progress notifications
	// to watchers that asked for them.
	WatchProgressNotifyTicks int
	// TickMs is a tick's length: lease TTLs are in seconds, expiry in
	// ticks.
	TickMs int
	// LeaseCheckpointDisabled turns off checkpointing remaining lease TTLs
	// (etcd's LeaseCheckpoint feature gate; on by default in detcd).
	LeaseCheckpointDisabled bool
	// LeaseCheckpointTicks is how often remaining TTLs are checkpointed.
	LeaseCheckpointTicks int64
	// LeaseRevokesPerSecond rate-limits lease expiry (etcd: 1000).
	LeaseRevokesPerSecond int
	// AuthTokenTTLTicks is how long a simple token lives after its last
	// use (etcd's --auth-token-ttl, 300 s).
	AuthTokenTTLTicks int
	// AuthTokensExternal: the driver issues and checks tokens (JWT) and
	// hands core the user and revision of each; core keeps none.
	AuthTokensExternal bool
	// StrictReconfigCheckDisabled turns off etcd's check that a
	// membership change leaves a quorum of started and connected members
	// (etcd's --strict-reconfig-check=false).
	StrictReconfigCheckDisabled bool `json:",omitempty"`

	// ProposalEpoch makes this run's proposal ids differ from any earlier
	// run's, so an entry proposed before a restart never completes a
	// request made after it. Drivers draw it from their randomness.
	ProposalEpoch uint64

	// PlantedBug names a deliberate bug to plant (see bugs.go); only
	// builds with the detcdbugs tag accept one.
	PlantedBug string `json:",omitempty"`

	// Logger receives core's log records; nil discards them.
	Logger *slog.Logger `json:"-"`
	// OnApply, if set, is called for every entry applied (data nil for a
	// snapshot), so checkers can compare what members applied. It must not
	// call back into the node.
	OnApply func(index, term uint64, data []byte) `json:"-"`
}

// AutoCompaction is etcd's --auto-compaction-mode and retention, in ticks
// for the periodic mode.
type AutoCompaction struct {
	// Mode is "", "periodic" or "revision".
	Mode string
	// RetentionTicks is the periodic mode's retention.
	RetentionTicks int64
	// RetentionRevisions is the revision mode's retention.
	RetentionRevisions int64
	// IntervalTicks is how often the revision mode checks (etcd: 5 min).
	IntervalTicks int64
	// HourTicks is an hour in ticks: the periodic mode compacts at least
	// hourly once it has started.
	HourTicks int64
}

// WithDefaults fills zero fields with defaults.
func (c Config) WithDefaults() Config {
	if c.ElectionTicks == 0 {
		c.ElectionTicks = DefaultElectionTicks
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = DefaultHeartbeatTicks
	}
	if c.RequestTimeoutTicks == 0 {
		c.RequestTimeoutTicks = DefaultRequestTimeoutTicks + 2*c.ElectionTicks
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.MaxTxnOps == 0 {
		c.MaxTxnOps = DefaultMaxTxnOps
	}
	if c.QuotaBackendBytes == 0 {
		c.QuotaBackendBytes = DefaultQuotaBackendBytes
	}
	if c.SnapshotCount == 0 {
		c.SnapshotCount = DefaultSnapshotCount
	}
	if c.SnapshotCatchUpEntries == 0 {
		c.SnapshotCatchUpEntries = DefaultSnapshotCatchUpEntries
	}
	if c.AuthTokenTTLTicks == 0 {
		tickMs := c.TickMs
		if tickMs <= 0 {
			tickMs = 100
		}
		c.AuthTokenTTLTicks = max(300_000/tickMs, 1)
	}
	if c.CheckpointMinBytes == 0 {
		c.CheckpointMinBytes = DefaultCheckpointMinBytes
	}
	if c.StopCheckpointMinBytes == 0 {
		c.StopCheckpointMinBytes = DefaultStopCheckpointMinBytes
	}
	if c.WatchProgressNotifyTicks == 0 {
		c.WatchProgressNotifyTicks = DefaultWatchProgressNotifyTicks
	}
	if c.TickMs == 0 {
		c.TickMs = DefaultTickMs
	}
	if c.LeaseCheckpointTicks == 0 {
		c.LeaseCheckpointTicks = int64(5 * 60 * 1000 / c.TickMs)
	}
	if c.LeaseRevokesPerSecond == 0 {
		c.LeaseRevokesPerSecond = DefaultLeaseRevokesPerSecond
	}
	return c
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	switch {
	case c.ID == 0:
		return errors.New("core: member id must not be 0")
	case len(c.Members) == 0:
		return errors.New("core: no members")
	case c.HeartbeatTicks <= 0 || c.ElectionTicks <= c.HeartbeatTicks:
		return fmt.Errorf("core: election ticks (%d) must exceed heartbeat ticks (%d) > 0", c.ElectionTicks, c.HeartbeatTicks)
	case c.MaxRequestBytes <= 0:
		return errors.New("core: max request bytes must be positive")
	case c.MaxTxnOps <= 0:
		return errors.New("core: max txn ops must be positive")
	case c.QuotaBackendBytes < 0:
		return errors.New("core: quota must not be negative")
	case c.RequestTimeoutTicks <= 0:
		return errors.New("core: request timeout must be positive")
	case c.TickMs <= 0:
		return fmt.Errorf("core: tick of %d ms", c.TickMs)
	}
	if err := validateBug(c.PlantedBug); err != nil {
		return err
	}
	found := false
	seen := map[uint64]bool{}
	for _, m := range c.Members {
		if seen[m.ID] {
			return fmt.Errorf("core: member %x listed twice", m.ID)
		}
		seen[m.ID] = true
		found = found || m.ID == c.ID
	}
	if !found {
		return fmt.Errorf("core: member %x is not among the members", c.ID)
	}
	switch c.AutoCompaction.Mode {
	case "":
	case "periodic":
		if c.AutoCompaction.RetentionTicks <= 0 {
			return errors.New("core: periodic auto compaction needs a positive retention")
		}
	case "revision":
		if c.AutoCompaction.RetentionRevisions <= 0 || c.AutoCompaction.IntervalTicks <= 0 {
			return errors.New("core: revision auto compaction needs a positive retention and interval")
		}
	default:
		return fmt.Errorf("core: unknown auto compaction mode %q", c.AutoCompaction.Mode)
	}
	return nil
}

// lessorConfig is the lessor's timing in ticks.
func (c Config) lessorConfig() lease.Config {
	tps := max(int64(1000/c.TickMs), 1)
	electionMs := int64(c.ElectionTicks * c.TickMs)
	lc := lease.Config{
		TicksPerSecond: tps,
		// etcd: 1.5 election timeouts, in whole seconds, rounded up.
		MinTTL:         (3*electionMs/2 + 999) / 1000,
		RevokesPerTick: max(c.LeaseRevokesPerSecond*c.TickMs/1000, 1),
		RetryTicks:     max(int64(leaseExpiryRetryMs/c.TickMs), 1),
		Bug:            c.PlantedBug,
	}
	if !c.LeaseCheckpointDisabled {
		lc.CheckpointTicks = c.LeaseCheckpointTicks
	}
	return lc
}
