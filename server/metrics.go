package server

import (
	"runtime"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/detcd/detcd/core"
)

// metrics are the server's Prometheus metrics, named, typed and labelled
// as etcd 3.7's, so that etcd's dashboards and alerting rules work
// unchanged (tests/metrics_diff_test.go compares the two /metrics pages).
// Where detcd has the data the value is real; where etcd's concept does
// not exist in detcd (bbolt's backend, the v2 store, raft snapshots to
// files) the metric is there with its zero value, never observed.
type metrics struct {
	reg *prometheus.Registry

	grpc *grpcMetrics

	wal           *walMetrics
	leaderChanges prometheus.Counter
	health        *healthMetrics
	req           requestMetrics
	peer          *peerMetrics
	alarms        *alarmGauge
	// state are the gauges read from what the loop publishes, by name.
	state map[string]prometheus.GaugeFunc
}

// metricSources are what the metrics read when scraped, and the parts
// that count into metrics of their own.
type metricSources struct {
	cfg    *Config
	status *memberStatus
	// members is the membership the peer transport last saw.
	members func() []core.Member
	peer    *peerMetrics
	wal     *walMetrics
	version *clusterVersion
}

// Buckets for durations in seconds and milliseconds.
var (
	secondsBuckets      = prometheus.ExponentialBuckets(0.0001, 2, 16)
	millisecondsBuckets = prometheus.ExponentialBuckets(1, 2, 16)
)

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

func gaugeFunc(name, help string, f func() float64) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
}

func histogram(name, help string, buckets []float64) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
}

// boolValue is a gauge's 1 or 0.
func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func newMetrics(src metricSources) *metrics {
	m := &metrics{
		reg:           prometheus.NewRegistry(),
		grpc:          newGRPCMetrics(),
		wal:           src.wal,
		leaderChanges: counter("etcd_server_leader_changes_seen_total", "The number of leader changes seen."),
		health:        newHealthMetrics(),
		req:           newRequestMetrics(),
		peer:          src.peer,
		alarms:        newAlarmGauge(),
		state:         stateGauges(src),
	}
	m.reg.MustRegister(m.grpc.collectors()...)
	m.reg.MustRegister(m.wal.fsync, m.wal.write, m.wal.bytes, m.leaderChanges, m.alarms)
	m.health.register(m.reg)
	m.req.register(m.reg)
	m.peer.register(m.reg)
	for _, g := range m.state { //detcd:maporder-ok: registered, then gathered sorted by name
		m.reg.MustRegister(g)
	}
	m.reg.MustRegister(newKnownPeers(src.status.id, src.members),
		gaugeFunc("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.", func() float64 { return float64(src.cfg.QuotaBackendBytes) }))
	m.reg.MustRegister(infoGauges(src.cfg, src.status.id)...)
	m.reg.MustRegister(src.version.gauge)
	m.reg.MustRegister(absentConcepts()...)
	return m
}

// stateGauges are read from what the loop publishes.
func stateGauges(src metricSources) map[string]prometheus.GaugeFunc {
	st := src.status
	gauges := map[string]prometheus.GaugeFunc{}
	add := func(name, help string, f func() float64) { gauges[name] = gaugeFunc(name, help, f) }
	add("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.", func() float64 { return boolValue(st.leader.Load() != 0) })
	add("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.", func() float64 { return boolValue(st.isLeader()) })
	add("etcd_server_is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise.", func() float64 { return boolValue(st.learner.Load()) })
	add("etcd_server_proposals_committed_total", "The total number of consensus proposals committed.", func() float64 { return float64(st.commit.Load()) })
	add("etcd_server_proposals_applied_total", "The total number of consensus proposals applied.", func() float64 { return float64(st.applied.Load()) })
	add("etcd_debugging_mvcc_current_revision", "The current revision of store.", func() float64 { return float64(st.rev.Load()) })
	add("etcd_debugging_mvcc_compact_revision", "The revision of the last compaction in store.", func() float64 { return float64(st.compactRev.Load()) })
	add("etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.", func() float64 { return float64(st.size.Load()) })
	add("etcd_mvcc_db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes.", func() float64 { return float64(st.inUse.Load()) })
	add("etcd_debugging_mvcc_keys_total", "Total number of keys.", func() float64 { return float64(st.keys.Load()) })
	add("etcd_debugging_auth_revision", "The current revision of auth store.", func() float64 { return float64(st.authRev.Load()) })
	return gauges
}

// infoGauges are etcd's constant "info" gauges: 1, with the fact in a
// label.
func infoGauges(cfg *Config, id uint64) []prometheus.Collector {
	info := func(name, help, label, value string) prometheus.Collector {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{label})
		g.WithLabelValues(value).Set(1)
		return g
	}
	return []prometheus.Collector{
		info("etcd_server_version", "Which version is running. 1 for 'server_version' label with current version.", "server_version", Version),
		info("etcd_server_go_version", "Which Go version server is running with. 1 for 'server_go_version' label with current version.", "server_go_version", runtime.Version()),
		info("etcd_server_id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", "server_id", hexID(id)),
		featureGauge(*cfg),
	}
}

// featureGauge is etcd_server_feature_enabled for each of etcd's feature
// gates, with etcd's stage and detcd's setting.
func featureGauge(cfg Config) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "etcd_server_feature_enabled", Help: "Whether or not a feature is enabled. 1 is enabled, 0 is not."}, []string{"name", "stage"})
	enabled, _ := cfg.gates()       // validated when the server was made
	for name, on := range enabled { //detcd:maporder-ok: one label set each
		g.WithLabelValues(name, featureStages[name]).Set(boolValue(on))
	}
	return g
}

// featureStages are etcd 3.7's stages of its feature gates, as its
// metric labels them.
var featureStages = map[string]string{
	"AllAlpha": "ALPHA", "AllBeta": "BETA",
	"CompactHashCheck": "ALPHA", "FastLeaseKeepAlive": "BETA", "InitialCorruptCheck": "ALPHA",
	"LeaseCheckpoint": "ALPHA", "LeaseCheckpointPersist": "ALPHA", "PriorityRequest": "ALPHA",
	"SetMemberLocalAddr": "ALPHA", "StopGRPCServiceOnDefrag": "ALPHA", "TxnModeWriteWithSharedBuffer": "BETA",
}

// hexID is a member id as etcd's metric labels write it.
func hexID(id uint64) string { return strconv.FormatUint(id, 16) }

// registerProcess adds the metrics of the process (Go's runtime, the
// process's CPU, memory and files) to what a member's metrics show: the
// server's, which is a process; a simulated member is none.
func (m *metrics) registerProcess() {
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}
