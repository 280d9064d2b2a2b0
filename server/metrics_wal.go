package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/detcd/detcd/core"
)

// walMetrics are etcd's disk metrics of the log, fed by the driver's log
// writer as its driver.Observer.
type walMetrics struct {
	fsync, write prometheus.Histogram
	bytes        prometheus.Gauge // a gauge in etcd, though it only grows
}

func newWALMetrics() *walMetrics {
	return &walMetrics{
		fsync: histogram("etcd_disk_wal_fsync_duration_seconds", "The latency distributions of fsync called by WAL.", secondsBuckets),
		write: histogram("etcd_disk_wal_write_duration_seconds", "The latency distributions of write called by WAL.", secondsBuckets),
		bytes: gauge("etcd_disk_wal_write_bytes_total", "Total number of bytes written in WAL."),
	}
}

func (w *walMetrics) Ready(*core.Ready) {}
func (w *walMetrics) Wrote(p *core.Persist, took time.Duration) {
	w.write.Observe(took.Seconds())
	bytes := 0
	for _, e := range p.Entries {
		bytes += len(e.Data)
	}
	w.bytes.Add(float64(bytes))
}
func (w *walMetrics) Synced(took time.Duration)                        { w.fsync.Observe(took.Seconds()) }
func (w *walMetrics) Durable(uint64)                                   {}
func (w *walMetrics) Checkpointed(uint64, int64, time.Duration, error) {}
