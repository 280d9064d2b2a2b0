package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/driver"
)

// Config is the server's configuration, with etcd's flag names in its
// field names.
type Config struct {
	Name                     string
	DataDir                  string
	ListenClientURLs         []string
	AdvertiseClientURLs      []string
	ListenPeerURLs           []string
	InitialAdvertisePeerURLs []string
	InitialCluster           string
	InitialClusterState      string
	InitialClusterToken      string
	SnapshotCount            uint64
	HeartbeatInterval        time.Duration
	ElectionTimeout          time.Duration
	MaxRequestBytes          int
	MaxTxnOps                int
	QuotaBackendBytes        int64
	AutoCompactionMode       string
	AutoCompactionRetention  string
	// WatchProgressNotifyInterval is how often watchers that asked for
	// progress notifications get one.
	WatchProgressNotifyInterval time.Duration
	// FeatureGates is etcd's --feature-gates: "Name=true,Name=false".
	// detcd acts on LeaseCheckpoint (on unless set false),
	// SetMemberLocalAddr, InitialCorruptCheck and CompactHashCheck (off
	// unless set true, as in etcd) and accepts the others etcd 3.7 knows.
	FeatureGates string
	// CorruptCheckTime is how often the leader compares its key-space hash
	// with the other members' (etcd's --corrupt-check-time; 0, the
	// default, never).
	CorruptCheckTime time.Duration
	// CompactHashCheckTime is how often the leader compares the hashes the
	// members kept at their last compactions, with the CompactHashCheck
	// gate (etcd's --compact-hash-check-time, default 1m).
	CompactHashCheckTime time.Duration
	// ClientTLS and PeerTLS are the certificates of the client and peer
	// URLs that are https.
	ClientTLS TLSInfo
	PeerTLS   TLSInfo
	// TLSMinVersion and TLSMaxVersion are "TLS1.2" or "TLS1.3" (empty:
	// TLS 1.2 up to Go's newest); CipherSuites are Go's names of the
	// TLS 1.2 suites allowed (empty: Go's defaults).
	TLSMinVersion string
	TLSMaxVersion string
	CipherSuites  []string
	// AuthToken is etcd's --auth-token: "simple", or
	// "jwt,pub-key=F,priv-key=F,sign-method=M[,ttl=D]".
	AuthToken string
	// BcryptCost hashes new passwords (etcd's --bcrypt-cost, default 10).
	BcryptCost int
	// AuthTokenTTL is how long a simple token lives after its last use.
	AuthTokenTTL time.Duration
	// ListenMetricsURLs serve /metrics and the health endpoints on their
	// own port (etcd's --listen-metrics-urls).
	ListenMetricsURLs []string
	// ListenClientHTTPURLs take the client port's HTTP traffic (the JSON
	// gateway, /health, /metrics...) on listeners of their own; the
	// --listen-client-urls then serve gRPC only (etcd's
	// --listen-client-http-urls).
	ListenClientHTTPURLs []string
	// CORS are the origins allowed to call the HTTP endpoints from a
	// browser (etcd's --cors; "*" any, none: no CORS headers).
	CORS []string
	// EnableGRPCGateway serves the JSON gateway on the client URLs.
	EnableGRPCGateway bool
	// MaxConcurrentStreams bounds the streams of one client connection.
	MaxConcurrentStreams uint32
	// GRPCKeepAliveMinTime is the shortest ping interval clients may use;
	// GRPCKeepAliveInterval and GRPCKeepAliveTimeout are how often the
	// server pings idle connections and how long it waits for an answer.
	GRPCKeepAliveMinTime  time.Duration
	GRPCKeepAliveInterval time.Duration
	GRPCKeepAliveTimeout  time.Duration
	// SnapshotCatchUpEntries is how many entries the log keeps after a
	// compaction for slow followers.
	SnapshotCatchUpEntries uint64
	// SelfSignedCertValidityYears is how long auto-TLS certificates last.
	SelfSignedCertValidityYears uint
	// EnablePprof serves Go's profiler on /debug/pprof, as etcd's flag does.
	EnablePprof bool
	// UnsafeWALRepair (--unsafe-wal-repair, detcd's own) starts the member
	// even if the last log segment holds a corrupt record: it and
	// everything after it are cut, with a WARN naming the file, offset and
	// bytes dropped. Writes the member acknowledged may be lost.
	UnsafeWALRepair bool
	// StrictReconfigCheck refuses membership changes that would leave
	// fewer started or connected members than a quorum (etcd's
	// --strict-reconfig-check, on by default).
	StrictReconfigCheck bool
	// Discovery bootstraps a new cluster through etcd's v3 discovery
	// (--discovery-*), instead of --initial-cluster.
	Discovery DiscoveryConfig
	// DiscoverySRV and DiscoverySRVName bootstrap a new cluster from a
	// domain's DNS SRV records (--discovery-srv, --discovery-srv-name;
	// srvcluster.go), asking Resolver (nil: the system's).
	DiscoverySRV, DiscoverySRVName string
	Resolver                       Resolver `json:"-"`

	Logger *slog.Logger `json:"-"`
	// LogOutput is where cmd writes logs (--log-outputs); nil is stderr.
	LogOutput io.Writer `json:"-"`
	// IgnoredFlags are etcd flags given that have no effect in detcd.
	IgnoredFlags []string

	// beforeStep is the loop's driver.LoopConfig.BeforeStep: tests only.
	beforeStep func(driver.StepKind)
}

// DefaultConfig is etcd's defaults: a single member named "default" on
// localhost, with its data in default.etcd.
func DefaultConfig() Config {
	return Config{
		Name:                        "default",
		ListenClientURLs:            []string{"http://localhost:2379"},
		AdvertiseClientURLs:         []string{"http://localhost:2379"},
		ListenPeerURLs:              []string{"http://localhost:2380"},
		InitialAdvertisePeerURLs:    []string{"http://localhost:2380"},
		InitialCluster:              "default=http://localhost:2380",
		InitialClusterState:         "new",
		InitialClusterToken:         "etcd-cluster",
		SnapshotCount:               core.DefaultSnapshotCount,
		HeartbeatInterval:           100 * time.Millisecond,
		ElectionTimeout:             1000 * time.Millisecond,
		MaxRequestBytes:             core.DefaultMaxRequestBytes,
		MaxTxnOps:                   core.DefaultMaxTxnOps,
		QuotaBackendBytes:           core.DefaultQuotaBackendBytes,
		AutoCompactionMode:          "periodic",
		WatchProgressNotifyInterval: 10 * time.Minute,
		CompactHashCheckTime:        time.Minute,
		EnableGRPCGateway:           true,
		CORS:                        []string{"*"},
		MaxConcurrentStreams:        math.MaxUint32,
		GRPCKeepAliveMinTime:        5 * time.Second,
		GRPCKeepAliveInterval:       2 * time.Hour,
		GRPCKeepAliveTimeout:        20 * time.Second,
		SnapshotCatchUpEntries:      core.DefaultSnapshotCatchUpEntries,
		SelfSignedCertValidityYears: 1,
		AuthToken:                   "simple",
		BcryptCost:                  bcrypt.DefaultCost,
		AuthTokenTTL:                300 * time.Second,
		StrictReconfigCheck:         true,
		Discovery: DiscoveryConfig{ // etcd's defaults
			DialTimeout: 2 * time.Second, RequestTimeout: 5 * time.Second,
			KeepAliveTime: 2 * time.Second, KeepAliveTimeout: 6 * time.Second,
			InsecureTransport: true,
		},
	}
}

// maxElectionTimeout is etcd's upper bound on --election-timeout.
const maxElectionTimeout = 50 * time.Second

// Validate checks the configuration with etcd's rules and messages.
func (c *Config) Validate() error {
	if c.Name == "" {
		return errors.New("--name must not be empty")
	}
	if c.DataDir == "" {
		c.DataDir = c.Name + ".etcd"
	}
	for _, u := range [][]string{c.ListenClientURLs, c.AdvertiseClientURLs, c.ListenPeerURLs, c.InitialAdvertisePeerURLs, c.ListenMetricsURLs, c.ListenClientHTTPURLs} {
		if err := checkURLs(u); err != nil {
			return err
		}
	}
	if len(c.ListenClientURLs) == 0 {
		return errors.New("--listen-client-urls must not be empty")
	}
	if c.HeartbeatInterval <= 0 {
		return fmt.Errorf("--heartbeat-interval must be positive, got %v", c.HeartbeatInterval)
	}
	if 5*c.HeartbeatInterval > c.ElectionTimeout {
		return fmt.Errorf("--election-timeout[%vms] should be at least as 5 times as --heartbeat-interval[%vms]", c.ElectionTimeout.Milliseconds(), c.HeartbeatInterval.Milliseconds())
	}
	if c.ElectionTimeout > maxElectionTimeout {
		return fmt.Errorf("--election-timeout[%vms] is too long, and should be set less than %vms", c.ElectionTimeout.Milliseconds(), maxElectionTimeout.Milliseconds())
	}
	if c.InitialClusterState != "new" && c.InitialClusterState != "existing" {
		return fmt.Errorf("invalid value %q for --initial-cluster-state: valid values are \"new\" or \"existing\"", c.InitialClusterState)
	}
	if err := c.validateDiscovery(); err != nil {
		return err
	}
	if err := c.validateSRV(); err != nil {
		return err
	}
	if c.MaxRequestBytes <= 0 {
		return errors.New("--max-request-bytes must be positive")
	}
	if c.MaxTxnOps <= 0 {
		return errors.New("--max-txn-ops must be positive")
	}
	if c.QuotaBackendBytes < 0 {
		return errors.New("--quota-backend-bytes must not be negative")
	}
	if c.MaxConcurrentStreams == 0 {
		return errors.New("--max-concurrent-streams must be positive")
	}
	if c.SelfSignedCertValidityYears == 0 {
		return errors.New("--self-signed-cert-validity must be at least 1 (year)")
	}
	if c.WatchProgressNotifyInterval < 0 {
		return errors.New("--watch-progress-notify-interval must not be negative")
	}
	if c.CorruptCheckTime < 0 {
		return errors.New("--corrupt-check-time must not be negative")
	}
	if c.CompactHashCheckTime <= 0 {
		return fmt.Errorf("--compact-hash-check-time must be >0 (set to %v)", c.CompactHashCheckTime)
	}
	if _, err := c.gates(); err != nil {
		return err
	}
	if err := c.validateAuth(); err != nil {
		return err
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if _, err := c.autoCompaction(); err != nil {
		return err
	}
	_, err := c.members()
	return err
}

// validateAuth checks the auth flags with etcd's rules.
func (c *Config) validateAuth() error {
	if kind, _, _ := strings.Cut(c.AuthToken, ","); kind != "simple" && kind != "jwt" {
		return fmt.Errorf("--auth-token %q: want simple or jwt,...", c.AuthToken)
	}
	if c.BcryptCost < bcrypt.MinCost || c.BcryptCost > bcrypt.MaxCost {
		return fmt.Errorf("invalid --bcrypt-cost %d: want %d to %d", c.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	if c.AuthTokenTTL <= 0 {
		return errors.New("--auth-token-ttl must be positive")
	}
	return nil
}

func checkURLs(us []string) error {
	for _, s := range us {
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("invalid URL %q: %w", s, err)
		}
		switch u.Scheme {
		case "http", "https":
			if u.Host == "" || u.Port() == "" {
				return fmt.Errorf("URL address does not have the form \"host:port\": %s", s)
			}
		case "unix", "unixs":
			// A socket file, named by what follows the scheme.
		default:
			return fmt.Errorf("URL scheme must be http, https, unix, or unixs: %s", s)
		}
	}
	return nil
}

// requestTimeout is etcd's request timeout, which bounds health checks'
// reads and the corruption checks' calls: 5 s plus two election timeouts.
func (c *Config) requestTimeout() time.Duration { return 5*time.Second + 2*c.ElectionTimeout }

// members parses --initial-cluster ("name=url,name=url") into members
// with etcd's ids, and checks that this member's entry matches
// --initial-advertise-peer-urls.
func (c *Config) members() ([]core.Member, error) {
	byName := map[string][]string{}
	var names []string
	for _, kv := range strings.Split(c.InitialCluster, ",") {
		name, u, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || name == "" || u == "" {
			return nil, fmt.Errorf("--initial-cluster: bad entry %q: want name=url", kv)
		}
		if err := checkURLs([]string{u}); err != nil {
			return nil, fmt.Errorf("--initial-cluster: %w", err)
		}
		if _, seen := byName[name]; !seen {
			names = append(names, name)
		}
		byName[name] = append(byName[name], u)
	}
	mine, ok := byName[c.Name]
	if !ok {
		return nil, fmt.Errorf("couldn't find local name %q in the initial cluster configuration", c.Name)
	}
	a, b := slices.Clone(mine), slices.Clone(c.InitialAdvertisePeerURLs)
	slices.Sort(a)
	slices.Sort(b)
	// From SRV records the member's entry names its host as the record
	// does; srvService matched it to the advertised URLs by address.
	if !slices.Equal(a, b) && !c.srvEnabled() {
		return nil, fmt.Errorf("--initial-cluster has %s=%s but missing from --initial-advertise-peer-urls=%s", c.Name, strings.Join(mine, ","), strings.Join(c.InitialAdvertisePeerURLs, ","))
	}
	var ms []core.Member
	seen := map[uint64]string{}
	for _, name := range names {
		m := core.Member{ID: core.MemberID(byName[name], c.InitialClusterToken), Name: name, PeerURLs: byName[name]}
		if other, dup := seen[m.ID]; dup {
			return nil, fmt.Errorf("--initial-cluster: members %s and %s have the same peer URLs", other, name)
		}
		seen[m.ID] = name
		if name == c.Name {
			m.ClientURLs = c.AdvertiseClientURLs
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// autoCompaction turns etcd's --auto-compaction-* flags into core's
// settings in ticks.
func (c *Config) autoCompaction() (core.AutoCompaction, error) {
	ac := core.AutoCompaction{Mode: c.AutoCompactionMode}
	r := c.AutoCompactionRetention
	if r == "" || r == "0" {
		return core.AutoCompaction{}, nil
	}
	tick := c.HeartbeatInterval
	switch c.AutoCompactionMode {
	case "periodic":
		d, err := time.ParseDuration(r)
		if err != nil {
			h, err2 := strconv.ParseInt(r, 10, 64)
			if err2 != nil {
				return ac, fmt.Errorf("invalid --auto-compaction-retention %q: %v", r, err)
			}
			d = time.Duration(h) * time.Hour // etcd reads a bare number as hours
		}
		if d <= 0 {
			return core.AutoCompaction{}, nil
		}
		ac.RetentionTicks = max(int64(d/tick), 1)
		ac.HourTicks = int64(time.Hour / tick)
	case "revision":
		n, err := strconv.ParseInt(r, 10, 64)
		if err != nil || n < 0 {
			return ac, fmt.Errorf("invalid --auto-compaction-retention %q for revision mode", r)
		}
		if n == 0 {
			return core.AutoCompaction{}, nil
		}
		ac.RetentionRevisions = n
		ac.IntervalTicks = max(int64(5*time.Minute/tick), 1)
	default:
		return ac, fmt.Errorf("unknown auto-compaction-mode %q", c.AutoCompactionMode)
	}
	return ac, nil
}

// CoreConfig is the member's configuration for core, from the flags
// alone (no file, socket or clock): New runs the member with it, and the
// simulator builds each simulated member with it. epoch is the proposal
// epoch, which New draws at random; log is core's logger. Call Validate
// first.
func (c *Config) CoreConfig(epoch uint64, log *slog.Logger) (core.Config, error) {
	ms, err := c.members()
	if err != nil {
		return core.Config{}, err
	}
	ac, err := c.autoCompaction()
	if err != nil {
		return core.Config{}, err
	}
	gates, err := c.gates()
	if err != nil {
		return core.Config{}, err
	}
	ids := make([]uint64, len(ms))
	var self uint64
	for i, m := range ms {
		ids[i] = m.ID
		if m.Name == c.Name {
			self = m.ID
		}
	}
	tick := c.HeartbeatInterval
	election := int(c.ElectionTimeout / tick)
	cc := core.Config{
		ID:                       self,
		ClusterID:                core.ClusterID(ids),
		Members:                  ms,
		ElectionTicks:            election,
		HeartbeatTicks:           1,
		RequestTimeoutTicks:      int((5*time.Second)/tick) + 2*election,
		MaxRequestBytes:          c.MaxRequestBytes,
		MaxTxnOps:                c.MaxTxnOps,
		QuotaBackendBytes:        c.QuotaBackendBytes,
		SnapshotCount:            c.SnapshotCount,
		SnapshotCatchUpEntries:   c.SnapshotCatchUpEntries,
		AutoCompaction:           ac,
		ProposalEpoch:            epoch,
		ClusterVersion:           ClusterVersion,
		WatchProgressNotifyTicks: max(int(c.WatchProgressNotifyInterval/tick), 1),
		TickMs:                   int(tick / time.Millisecond),
		LeaseCheckpointDisabled:  !gates["LeaseCheckpoint"],
		AuthTokenTTLTicks:        max(int(c.AuthTokenTTL/tick), 1),
		AuthTokensExternal:       strings.HasPrefix(c.AuthToken, "jwt"),
		Logger:                   log,
	}
	cc.StrictReconfigCheckDisabled = !c.StrictReconfigCheck
	return cc, nil
}

// FrontendConfig is the configuration of the member's driver.Frontend from
// the flags; newMemberID chooses the ids of members added at runtime. The
// token provider and client certificate users come from the auth and TLS
// set-up, which read files.
func (c *Config) FrontendConfig(newMemberID func(peerURLs []string) uint64) driver.FrontendConfig {
	return driver.FrontendConfig{
		MaxTxnOps: c.MaxTxnOps, MaxRequestBytes: c.MaxRequestBytes, BcryptCost: c.BcryptCost,
		Version: Version, SnapshotDir: c.DataDir, NewMemberID: newMemberID,
	}
}

// etcdFeatureGates are the gates etcd 3.7 knows, with detcd's defaults:
// detcd checkpoints lease TTLs unless told not to.
var etcdFeatureGates = map[string]bool{
	"AllAlpha": false, "AllBeta": false, "CompactHashCheck": false, "FastLeaseKeepAlive": true,
	"InitialCorruptCheck": false, "LeaseCheckpoint": true, "LeaseCheckpointPersist": true,
	"PriorityRequest": false, "SetMemberLocalAddr": false, "StopGRPCServiceOnDefrag": false,
	"TxnModeWriteWithSharedBuffer": true,
}

// gates parses --feature-gates over the defaults.
func (c *Config) gates() (map[string]bool, error) {
	out := map[string]bool{}
	for k, v := range etcdFeatureGates {
		out[k] = v
	}
	if strings.TrimSpace(c.FeatureGates) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(c.FeatureGates, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if _, known := etcdFeatureGates[k]; !known {
			return nil, fmt.Errorf("--feature-gates: unrecognized feature gate: %s", k)
		}
		b, err := strconv.ParseBool(v)
		if !ok || err != nil {
			return nil, fmt.Errorf("--feature-gates: invalid value of %s=%s, err: %v", k, v, err)
		}
		out[k] = b
	}
	return out, nil
}
