package server

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
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
	m, r := in.metrics, &in.metrics.req
	others := map[string]prometheus.Metric{
		"etcd_server_leader_changes_seen_total": m.leaderChanges,
		"etcd_mvcc_put_total":                   r.puts, "etcd_mvcc_delete_total": r.deletes,
		"etcd_mvcc_range_total": r.ranges, "etcd_mvcc_txn_total": r.txn,
		"etcd_debugging_lease_granted_total": r.leaseGranted,
		"etcd_debugging_lease_revoked_total": r.leaseRevoked,
		"etcd_server_proposals_pending":      r.proposalsPending,
	}
	return readingsOf(func(name string) float64 {
		if g, ok := m.state[name]; ok {
			return metricValue(g)
		}
		return metricValue(others[name])
	})
}

// ScrapeReadings reads the readings from a scrape of /metrics: the
// answer's headers (its Content-Type names the exposition format, text or
// delimited protobuf, as Prometheus negotiates it) and body. It is the
// simulator's check that the exposition shows what the collectors hold.
func ScrapeReadings(h http.Header, body io.Reader) (Readings, error) {
	families := map[string]*dto.MetricFamily{}
	dec := expfmt.NewDecoder(body, expfmt.ResponseFormat(h))
	for range scrapeFamiliesMax {
		f := &dto.MetricFamily{}
		err := dec.Decode(f)
		if errors.Is(err, io.EOF) {
			return readingsOf(func(name string) float64 {
				if f := families[name]; f != nil && len(f.Metric) == 1 {
					return dtoValue(f.Metric[0])
				}
				return math.NaN()
			}), nil
		}
		if err != nil {
			return Readings{}, fmt.Errorf("metrics: %w", err)
		}
		families[f.GetName()] = f
	}
	return Readings{}, fmt.Errorf("metrics: more than %d metric families", scrapeFamiliesMax)
}

// scrapeFamiliesMax bounds the metric families a scrape is read for: a
// member has about two hundred.
const scrapeFamiliesMax = 10_000

// readingsOf reads each reading by its metric's name from value.
func readingsOf(value func(name string) float64) Readings {
	return Readings{
		HasLeader:          value("etcd_server_has_leader") == 1,
		IsLeader:           value("etcd_server_is_leader") == 1,
		IsLearner:          value("etcd_server_is_learner") == 1,
		ProposalsCommitted: value("etcd_server_proposals_committed_total"),
		ProposalsApplied:   value("etcd_server_proposals_applied_total"),
		CurrentRevision:    value("etcd_debugging_mvcc_current_revision"),
		CompactRevision:    value("etcd_debugging_mvcc_compact_revision"),
		LeaderChanges:      value("etcd_server_leader_changes_seen_total"),
		Puts:               value("etcd_mvcc_put_total"),
		Deletes:            value("etcd_mvcc_delete_total"),
		Ranges:             value("etcd_mvcc_range_total"),
		Txns:               value("etcd_mvcc_txn_total"),
		LeasesGranted:      value("etcd_debugging_lease_granted_total"),
		LeasesRevoked:      value("etcd_debugging_lease_revoked_total"),
		ProposalsPending:   value("etcd_server_proposals_pending"),
	}
}

// metricValue is a counter's or gauge's value; NaN for other metrics.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if m == nil || m.Write(&d) != nil {
		return math.NaN()
	}
	return dtoValue(&d)
}

// dtoValue is a counter's or gauge's value; NaN for other metrics.
func dtoValue(d *dto.Metric) float64 {
	switch {
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	case d.Counter != nil:
		return d.Counter.GetValue()
	}
	return math.NaN()
}
