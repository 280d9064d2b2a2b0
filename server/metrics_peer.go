package server

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/detcd/detcd/core"
)

// knownPeers is etcd_network_known_peers: 1 for each member of the
// cluster, 0 for each member seen before and since removed.
type knownPeers struct {
	local   string // this member's id
	members func() []core.Member
	desc    *prometheus.Desc
	mu      sync.Mutex
	seen    []uint64
}

func newKnownPeers(id uint64, members func() []core.Member) *knownPeers {
	return &knownPeers{local: hexID(id), members: members,
		desc: prometheus.NewDesc("etcd_network_known_peers", "The current number of known peers.", []string{"Local", "Remote"}, nil)}
}

func (k *knownPeers) Describe(ch chan<- *prometheus.Desc) { ch <- k.desc }

func (k *knownPeers) Collect(ch chan<- prometheus.Metric) {
	var now []uint64
	for _, m := range k.members() {
		now = append(now, m.ID)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, id := range now {
		if !slices.Contains(k.seen, id) {
			k.seen = append(k.seen, id)
		}
	}
	for _, id := range k.seen {
		ch <- prometheus.MustNewConstMetric(k.desc, prometheus.GaugeValue, boolValue(slices.Contains(now, id)), k.local, hexID(id))
	}
}

// peerMetrics are etcd's metrics of the traffic between members, by the
// other member's id in hexadecimal.
type peerMetrics struct {
	sent, received         *prometheus.CounterVec
	sendFailed, recvFailed *prometheus.CounterVec
	active, disconnected   *prometheus.GaugeVec
	snapSend, snapReceive  snapshotMetrics
	rtt                    *prometheus.HistogramVec
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

func newPeerMetrics() *peerMetrics {
	counters := func(name, help, label string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
	}
	gauges := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"Local", "Remote"})
	}
	return &peerMetrics{
		sent:         counters("etcd_network_peer_sent_bytes_total", "The total number of bytes sent to peers.", "To"),
		received:     counters("etcd_network_peer_received_bytes_total", "The total number of bytes received from peers.", "From"),
		sendFailed:   counters("etcd_network_peer_sent_failures_total", "The total number of send failures from peers.", "To"),
		recvFailed:   counters("etcd_network_peer_received_failures_total", "The total number of receive failures from peers.", "From"),
		active:       gauges("etcd_network_active_peers", "The current number of active peer connections."),
		disconnected: gauges("etcd_network_disconnected_peers_total", "The total number of disconnected peers."),
		snapSend:     newSnapshotMetrics("send", "To"),
		snapReceive:  newSnapshotMetrics("receive", "From"),
		rtt: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "etcd_network_peer_round_trip_time_seconds", Help: "Round-Trip-Time histogram between peers",
			Buckets: secondsBuckets}, []string{"To"}),
	}
}

func (p *peerMetrics) register(reg *prometheus.Registry) {
	reg.MustRegister(p.sent, p.received, p.sendFailed, p.recvFailed, p.active, p.disconnected, p.rtt)
	for _, m := range []snapshotMetrics{p.snapSend, p.snapReceive} {
		reg.MustRegister(m.success, m.failures, m.inflight, m.seconds)
	}
}
