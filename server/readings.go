package server

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Readings are values of a member's etcd metrics as a scrape of /metrics
// shows them, read through the same collectors: what the simulator
// compares with what the member did.
type Readings struct {
	HasLeader, IsLeader, IsLearner       bool
	ProposalsCommitted, ProposalsApplied float64
	CurrentRevision, CompactRevision     float64
	LeaderChanges                        float64
	// Puts, Deletes, Ranges and Txns are etcd_mvcc_*_total: what the
	// member's clients had it do.
	Puts, Deletes, Ranges, Txns  float64
	LeasesGranted, LeasesRevoked float64
	ProposalsPending             float64
}

// Read reads the instruments' metrics.
func (in *Instruments) Read() Readings {
	m := in.metrics
	state := func(name string) float64 { return metricValue(m.state[name]) }
	r := &m.req
	return Readings{
		HasLeader:          state("etcd_server_has_leader") == 1,
		IsLeader:           state("etcd_server_is_leader") == 1,
		IsLearner:          state("etcd_server_is_learner") == 1,
		ProposalsCommitted: state("etcd_server_proposals_committed_total"),
		ProposalsApplied:   state("etcd_server_proposals_applied_total"),
		CurrentRevision:    state("etcd_debugging_mvcc_current_revision"),
		CompactRevision:    state("etcd_debugging_mvcc_compact_revision"),
		LeaderChanges:      metricValue(m.leaderChanges),
		Puts:               metricValue(r.puts),
		Deletes:            metricValue(r.deletes),
		Ranges:             metricValue(r.ranges),
		Txns:               metricValue(r.txn),
		LeasesGranted:      metricValue(r.leaseGranted),
		LeasesRevoked:      metricValue(r.leaseRevoked),
		ProposalsPending:   metricValue(r.proposalsPending),
	}
}

// metricValue is a counter's or gauge's value; NaN for other metrics.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if m == nil || m.Write(&d) != nil {
		return math.NaN()
	}
	switch {
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	case d.Counter != nil:
		return d.Counter.GetValue()
	}
	return math.NaN()
}
