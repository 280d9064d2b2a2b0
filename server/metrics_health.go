package server

import "github.com/prometheus/client_golang/prometheus"

// healthMetrics are etcd's metrics of the health endpoints: /health's
// counters and each named check's.
type healthMetrics struct {
	success, failures prometheus.Counter
	gauge             *prometheus.GaugeVec
	counter           *prometheus.CounterVec
}

func newHealthMetrics() *healthMetrics {
	return &healthMetrics{
		success:  counter("etcd_server_health_success", "The total number of successful health checks"),
		failures: counter("etcd_server_health_failures", "The total number of failed health checks"),
		gauge:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "etcd_server_healthcheck", Help: "The result of each kind of healthcheck."}, []string{"type", "name"}),
		counter: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "etcd_server_healthchecks_total", Help: "The total number of each kind of healthcheck."},
			[]string{"type", "name", "status"}),
	}
}

func (m *healthMetrics) register(reg *prometheus.Registry) {
	reg.MustRegister(m.success, m.failures, m.gauge, m.counter)
}

// record counts a check's result.
func (m *healthMetrics) record(kind, name, result string) {
	m.gauge.WithLabelValues(kind, name).Set(boolValue(result == healthSuccess))
	m.counter.WithLabelValues(kind, name, result).Inc()
}
