package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

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
