package server

import (
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"sync/atomic"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus metrics, named, typed and labelled
// as etcd 3.7's, so that etcd's dashboards and alerting rules work
// unchanged (tests/metrics_diff_test.go compares the two /metrics pages).
// Where detcd has the data the value is real; where etcd's concept does
// not exist in detcd (bbolt's backend, the v2 store, raft snapshots to
// files) the metric is there with its zero value, never observed.
type metrics struct {
	reg *prometheus.Registry

	grpc *grpcprom.ServerMetrics

	fsync, walWrite prometheus.Histogram
	walBytes        prometheus.Gauge // a gauge in etcd, though it only grows
	healthSuccess   prometheus.Counter
	healthFailures  prometheus.Counter
	leaderChanges   prometheus.Counter
	health          healthMetrics
	req             requestMetrics
	peer            peerMetrics

	// Published by the loop.
	size, inUse, keys atomic.Int64
	applied, commit   atomic.Uint64
	authRev           atomic.Uint64
	noSpace, corrupt  atomic.Bool
	alarms            *alarmGauge
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

func gaugeFunc(name, help string, f func() float64) prometheus.Collector {
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

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg:            prometheus.NewRegistry(),
		grpc:           grpcprom.NewServerMetrics(),
		fsync:          histogram("etcd_disk_wal_fsync_duration_seconds", "The latency distributions of fsync called by WAL.", secondsBuckets),
		walWrite:       histogram("etcd_disk_wal_write_duration_seconds", "The latency distributions of write called by WAL.", secondsBuckets),
		walBytes:       gauge("etcd_disk_wal_write_bytes_total", "Total number of bytes written in WAL."),
		healthSuccess:  counter("etcd_server_health_success", "The total number of successful health checks"),
		healthFailures: counter("etcd_server_health_failures", "The total number of failed health checks"),
		leaderChanges:  counter("etcd_server_leader_changes_seen_total", "The number of leader changes seen."),
		health:         newHealthMetrics(),
		req:            newRequestMetrics(),
		peer:           newPeerMetrics(),
		alarms:         newAlarmGauge(),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.grpc, m.fsync, m.walWrite, m.walBytes, m.healthSuccess, m.healthFailures, m.leaderChanges,
		m.health.gauge, m.health.counter, m.alarms,
	)
	m.req.register(m.reg)
	m.peer.register(m.reg)
	m.reg.MustRegister(m.stateGauges(s)...)
	m.reg.MustRegister(m.infoGauges(s)...)
	m.reg.MustRegister(absentConcepts()...)
	return m
}

// stateGauges are read from what the loop publishes.
func (m *metrics) stateGauges(s *Server) []prometheus.Collector {
	return []prometheus.Collector{
		gaugeFunc("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.", func() float64 {
			return boolValue(s.leader.Load() != 0)
		}),
		gaugeFunc("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.", func() float64 {
			l := s.leader.Load()
			return boolValue(l != 0 && l == s.node.ID())
		}),
		gaugeFunc("etcd_server_is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise.", func() float64 { return boolValue(s.learner.Load()) }),
		gaugeFunc("etcd_server_proposals_committed_total", "The total number of consensus proposals committed.", func() float64 { return float64(m.commit.Load()) }),
		gaugeFunc("etcd_server_proposals_applied_total", "The total number of consensus proposals applied.", func() float64 { return float64(m.applied.Load()) }),
		gaugeFunc("etcd_debugging_mvcc_current_revision", "The current revision of store.", func() float64 { return float64(s.Rev()) }),
		gaugeFunc("etcd_debugging_mvcc_compact_revision", "The revision of the last compaction in store.", func() float64 { return float64(s.CompactRev()) }),
		gaugeFunc("etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.", func() float64 { return float64(m.size.Load()) }),
		gaugeFunc("etcd_mvcc_db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes.", func() float64 { return float64(m.inUse.Load()) }),
		gaugeFunc("etcd_debugging_mvcc_keys_total", "Total number of keys.", func() float64 { return float64(m.keys.Load()) }),
		gaugeFunc("etcd_debugging_auth_revision", "The current revision of auth store.", func() float64 { return float64(m.authRev.Load()) }),
		&knownPeers{s: s, desc: prometheus.NewDesc("etcd_network_known_peers", "The current number of known peers.", []string{"Local", "Remote"}, nil)},
		gaugeFunc("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.", func() float64 { return float64(s.cfg.QuotaBackendBytes) }),
	}
}

// infoGauges are etcd's constant "info" gauges: 1, with the fact in a
// label.
func (m *metrics) infoGauges(s *Server) []prometheus.Collector {
	info := func(name, help, label, value string) prometheus.Collector {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{label})
		g.WithLabelValues(value).Set(1)
		return g
	}
	return []prometheus.Collector{
		info("etcd_server_version", "Which version is running. 1 for 'server_version' label with current version.", "server_version", Version),
		info("etcd_cluster_version", "Which version is running. 1 for 'cluster_version' label with current cluster version", "cluster_version", ClusterVersion),
		info("etcd_server_go_version", "Which Go version server is running with. 1 for 'server_go_version' label with current version.", "server_go_version", runtime.Version()),
		info("etcd_server_id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", "server_id", hexID(s.node.ID())),
		featureGauge(s.cfg),
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

// zeroCounterVec is a labelled counter with one series at zero, so that
// the family shows on /metrics though nothing ever counts in it.
func zeroCounterVec(name, help, label, value string) prometheus.Collector {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
	c.WithLabelValues(value)
	return c
}

// absentConcepts are etcd's metrics of things detcd does not have: bbolt's
// backend and its transactions, snapshot files, the v2 store, raft
// snapshots applied from files, heartbeats sent apart from raft's
// messages. They stay at zero (histograms never observed) so that
// dashboards and alerts find them.
func absentConcepts() []prometheus.Collector {
	return []prometheus.Collector{
		histogram("etcd_disk_backend_commit_duration_seconds", "The latency distributions of commit called by backend.", secondsBuckets),
		histogram("etcd_debugging_disk_backend_commit_rebalance_duration_seconds", "The latency distributions of commit.rebalance called by bboltdb backend.", secondsBuckets),
		histogram("etcd_debugging_disk_backend_commit_spill_duration_seconds", "The latency distributions of commit.spill called by bboltdb backend.", secondsBuckets),
		histogram("etcd_debugging_disk_backend_commit_write_duration_seconds", "The latency distributions of commit.write called by bboltdb backend.", secondsBuckets),
		gauge("etcd_mvcc_db_open_read_transactions", "The number of currently open read transactions"),
		histogram("etcd_debugging_snap_save_marshalling_duration_seconds", "The marshalling cost distributions of save called by snapshot.", secondsBuckets),
		histogram("etcd_debugging_snap_save_total_duration_seconds", "The total latency distributions of save called by snapshot.", secondsBuckets),
		histogram("etcd_snap_db_fsync_duration_seconds", "The latency distributions of fsyncing .snap.db file", secondsBuckets),
		histogram("etcd_snap_db_save_total_duration_seconds", "The total latency distributions of v3 snapshot save", secondsBuckets),
		histogram("etcd_snap_fsync_duration_seconds", "The latency distributions of fsync called by snap.", secondsBuckets),
		counter("etcd_debugging_store_expires_total", "Total number of expired keys."),
		counter("etcd_debugging_store_watch_requests_total", "Total number of incoming watch requests (new or reestablished)."),
		gauge("etcd_debugging_store_watchers", "Count of currently active watchers."),
		zeroCounterVec("etcd_debugging_store_reads_total", "Total number of reads action by (get/getRecursive), local to this member.", "action", "get"),
		zeroCounterVec("etcd_debugging_store_writes_total", "Total number of writes (e.g. set/compareAndDelete) seen by this member.", "action", "set"),
		gauge("etcd_server_snapshot_apply_in_progress_total", "1 if the server is applying the incoming snapshot. 0 if none."),
		counter("etcd_server_heartbeat_send_failures_total", "The total number of leader heartbeat send failures (likely overloaded from slow disk)."),
		// detcd has no queue of unsynced watchers' events apart from
		// each stream's credit.
		gauge("etcd_debugging_mvcc_pending_events_total", "Total number of pending events to be sent."),
		gauge("etcd_debugging_mvcc_slow_watcher_total", "Total number of unsynced slow watchers."),
	}
}

// knownPeers is etcd_network_known_peers: 1 for each member of the
// cluster, 0 for each member seen before and since removed.
type knownPeers struct {
	s    *Server
	desc *prometheus.Desc
	mu   sync.Mutex
	seen []uint64
}

func (k *knownPeers) Describe(ch chan<- *prometheus.Desc) { ch <- k.desc }

func (k *knownPeers) Collect(ch chan<- prometheus.Metric) {
	var now []uint64
	for _, m := range k.s.peers.memberList() {
		now = append(now, m.ID)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, id := range now {
		if !slices.Contains(k.seen, id) {
			k.seen = append(k.seen, id)
		}
	}
	local := hexID(k.s.node.ID())
	for _, id := range k.seen {
		ch <- prometheus.MustNewConstMetric(k.desc, prometheus.GaugeValue, boolValue(slices.Contains(now, id)), local, hexID(id))
	}
}

// peerMetrics are etcd's metrics of the traffic between members, by the
// other member's id in hexadecimal.
type peerMetrics struct {
	sent, received         *prometheus.CounterVec
	sendFailed, recvFailed *prometheus.CounterVec
	active, disconnected   *prometheus.GaugeVec
	snapSend, snapReceive  snapshotMetrics
}

// snapshotMetrics are etcd's metrics of snapshots sent to or received
// from peers, by peer.
type snapshotMetrics struct {
	success, failures *prometheus.CounterVec
	inflight          *prometheus.GaugeVec
	seconds           *prometheus.HistogramVec
}

func newSnapshotMetrics(way, label string) snapshotMetrics {
	name := "etcd_network_snapshot_" + way + "_"
	return snapshotMetrics{
		success:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: name + "success", Help: "Total number of successful snapshot " + way + "s"}, []string{label}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name + "failures", Help: "Total number of snapshot " + way + " failures"}, []string{label}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name + "inflights_total", Help: "Total number of inflight snapshot " + way + "s"}, []string{label}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name + "total_duration_seconds", Help: "Total latency distributions of v3 snapshot " + way + "s",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 10)}, []string{label}),
	}
}

// snapshotStarted counts a snapshot in flight to or from peer; the
// function it returns counts its end.
func (p *peerMetrics) snapshotStarted(m *snapshotMetrics, peer string) func(error) {
	start := time.Now()
	m.inflight.WithLabelValues(peer).Inc()
	return func(err error) {
		m.inflight.WithLabelValues(peer).Dec()
		if err != nil {
			m.failures.WithLabelValues(peer).Inc()
			return
		}
		m.success.WithLabelValues(peer).Inc()
		m.seconds.WithLabelValues(peer).Observe(time.Since(start).Seconds())
	}
}

func newPeerMetrics() peerMetrics {
	counters := func(name, help, label string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
	}
	gauges := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"Local", "Remote"})
	}
	return peerMetrics{
		sent:         counters("etcd_network_peer_sent_bytes_total", "The total number of bytes sent to peers.", "To"),
		received:     counters("etcd_network_peer_received_bytes_total", "The total number of bytes received from peers.", "From"),
		sendFailed:   counters("etcd_network_peer_sent_failures_total", "The total number of send failures from peers.", "To"),
		recvFailed:   counters("etcd_network_peer_received_failures_total", "The total number of receive failures from peers.", "From"),
		active:       gauges("etcd_network_active_peers", "The current number of active peer connections."),
		disconnected: gauges("etcd_network_disconnected_peers_total", "The total number of disconnected peers."),
		snapSend:     newSnapshotMetrics("send", "To"),
		snapReceive:  newSnapshotMetrics("receive", "From"),
	}
}

func (p *peerMetrics) register(reg *prometheus.Registry) {
	reg.MustRegister(p.sent, p.received, p.sendFailed, p.recvFailed, p.active, p.disconnected)
	for _, m := range []snapshotMetrics{p.snapSend, p.snapReceive} {
		reg.MustRegister(m.success, m.failures, m.inflight, m.seconds)
	}
}

// hexID is a member id as etcd's metric labels write it.
func hexID(id uint64) string { return strconv.FormatUint(id, 16) }

// alarmGauge is etcd_debugging_server_alarms: 1 for each raised alarm by
// member and type, 0 for each raised before and since disarmed.
type alarmGauge struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	now  []*pb.AlarmMember
	seen []*pb.AlarmMember
}

func newAlarmGauge() *alarmGauge {
	return &alarmGauge{desc: prometheus.NewDesc("etcd_debugging_server_alarms",
		"Alarms for every member in cluster. 1 for 'server_id' label with current ID. 2 for 'alarm_type' label with type of this alarm",
		[]string{"server_id", "alarm_type"}, nil)}
}

func sameAlarm(a, b *pb.AlarmMember) bool { return a.MemberID == b.MemberID && a.Alarm == b.Alarm }

// publish takes the raised alarms; on the loop.
func (g *alarmGauge) publish(alarms []*pb.AlarmMember) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.now = alarms
	for _, a := range alarms {
		if !slices.ContainsFunc(g.seen, func(b *pb.AlarmMember) bool { return sameAlarm(a, b) }) {
			g.seen = append(g.seen, a)
		}
	}
}

func (g *alarmGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *alarmGauge) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, a := range g.seen {
		raised := slices.ContainsFunc(g.now, func(b *pb.AlarmMember) bool { return sameAlarm(a, b) })
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, boolValue(raised), hexID(a.MemberID), a.Alarm.String())
	}
}
