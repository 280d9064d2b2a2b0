package server

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// etcd's peer prober: each member times a round trip to every peer every
// probe interval and keeps a smoothed round-trip time, SRTT = (1-α) SRTT
// + α RTT with α = 1/8 (the first RTT taken as it is), which it observes
// into etcd_network_peer_round_trip_time_seconds{To} a first interval
// after the peer is added, then every healthy interval while the peer
// answered its last probe and every unhealthy interval while it did not.
// The probe is etcd's GET /raft/probing.

const rttSmoothing = 0.125

// probeTimes are the prober's intervals.
type probeTimes struct {
	probe, first, healthy, unhealthy time.Duration
}

// peerProbeTimes are etcd's: probes every 4 s (its connection read
// timeout less a second), observations after 5 s, then every 30 s, or 5 s
// while the peer does not answer. Tests shorten them.
var peerProbeTimes = probeTimes{probe: 4 * time.Second, first: 5 * time.Second, healthy: 30 * time.Second, unhealthy: 5 * time.Second}

// rttState is one peer's prober state.
type rttState struct {
	srtt    time.Duration
	healthy bool
}

func (r *rttState) record(rtt time.Duration, err error) {
	if err != nil {
		r.healthy = false
		return
	}
	if r.srtt == 0 {
		r.srtt = rtt
	}
	r.srtt = time.Duration((1-rttSmoothing)*float64(r.srtt) + rttSmoothing*float64(rtt))
	r.healthy = true
}

// probeRTT probes the peer until it is stopped.
func (p *peer) probeRTT() {
	times := peerProbeTimes
	c, err := p.t.dialer.client(p.urls[0])
	if err != nil {
		p.t.log.Warn("failed to add peer into prober", "remote-peer-id", hexID(p.id), "error", err.Error())
		return
	}
	defer c.CloseIdleConnections()
	probe := time.NewTicker(times.probe)
	defer probe.Stop()
	observe := time.NewTimer(times.first)
	defer observe.Stop()
	var st rttState
	to := hexID(p.id)
	for {
		select {
		case <-p.stop:
			return
		case <-probe.C:
			st.record(probeOnce(c, times.probe))
		case <-observe.C:
			p.t.metrics.rtt.WithLabelValues(to).Observe(st.srtt.Seconds())
			if st.healthy {
				observe.Reset(times.healthy)
			} else {
				observe.Reset(times.unhealthy)
			}
		}
	}
}

// probeOnce times one probe; it gives up after timeout.
func probeOnce(c peerClient, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	b, _, err := c.get(ctx, pathProbing, nil, nil)
	rtt := time.Since(start)
	if err != nil {
		return rtt, err
	}
	var h probeHealth
	if err := json.Unmarshal(b, &h); err != nil || !h.OK {
		return rtt, fmt.Errorf("bad probe answer %q", b)
	}
	return rtt, nil
}
