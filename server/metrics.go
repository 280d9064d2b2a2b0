package server

import (
	"context"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// metrics are the server's Prometheus metrics, named as etcd names them
// where etcd has the metric, so dashboards built for etcd keep working.
type metrics struct {
	reg *prometheus.Registry

	fsync          prometheus.Histogram
	walBytes       prometheus.Counter
	healthSuccess  prometheus.Counter
	healthFailures prometheus.Counter
	leaderChanges  prometheus.Counter
	handled        *prometheus.CounterVec
	health         healthMetrics

	// Published by the loop.
	size, inUse, keys atomic.Int64
	noSpace, corrupt  atomic.Bool
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), health: newHealthMetrics()}
	m.fsync = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "etcd_disk_wal_fsync_duration_seconds", Help: "The latency distributions of fsync called by WAL.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	m.walBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "etcd_disk_wal_write_bytes_total", Help: "Total number of bytes written in WAL."})
	m.healthSuccess = prometheus.NewCounter(prometheus.CounterOpts{Name: "etcd_server_health_success", Help: "The total number of successful health checks"})
	m.healthFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "etcd_server_health_failures", Help: "The total number of failed health checks"})
	m.leaderChanges = prometheus.NewCounter(prometheus.CounterOpts{Name: "etcd_server_leader_changes_seen_total", Help: "The number of leader changes seen."})
	m.handled = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grpc_server_handled_total", Help: "Total number of RPCs completed on the server, regardless of success or failure."}, []string{"grpc_method", "grpc_code"})
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.fsync, m.walBytes, m.healthSuccess, m.healthFailures, m.leaderChanges, m.handled,
		m.health.gauge, m.health.counter,
		gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.", func() float64 {
			if s.leader.Load() != 0 {
				return 1
			}
			return 0
		}),
		gauge("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.", func() float64 {
			if l := s.leader.Load(); l != 0 && l == s.node.ID() {
				return 1
			}
			return 0
		}),
		gauge("etcd_debugging_mvcc_current_revision", "The current revision of store.", func() float64 { return float64(s.rev.Load()) }),
		gauge("etcd_debugging_mvcc_compact_revision", "The revision of the last compaction in store.", func() float64 { return float64(s.compactRev.Load()) }),
		gauge("etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.", func() float64 { return float64(m.size.Load()) }),
		gauge("etcd_mvcc_db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes.", func() float64 { return float64(m.inUse.Load()) }),
		gauge("etcd_debugging_mvcc_keys_total", "Total number of keys.", func() float64 { return float64(m.keys.Load()) }),
		gauge("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.", func() float64 { return float64(s.cfg.QuotaBackendBytes) }),
	)
	return m
}

// unary counts finished RPCs by method and code.
func (m *metrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	m.handled.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return resp, err
}
