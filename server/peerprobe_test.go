package server

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRTTState: the smoothed round-trip time as etcd's prober keeps it.
func TestRTTState(t *testing.T) {
	var st rttState
	for _, tc := range []struct {
		rtt         time.Duration
		err         error
		wantSRTT    time.Duration
		wantHealthy bool
	}{
		{8 * time.Millisecond, nil, 8 * time.Millisecond, true},           // the first taken as it is
		{16 * time.Millisecond, nil, 9 * time.Millisecond, true},          // 7/8 of 8 + 1/8 of 16
		{time.Second, errors.New("timeout"), 9 * time.Millisecond, false}, // a failure keeps SRTT
		{9 * time.Millisecond, nil, 9 * time.Millisecond, true},
	} {
		st.record(tc.rtt, tc.err)
		if st.srtt != tc.wantSRTT || st.healthy != tc.wantHealthy {
			t.Fatalf("after %v, %v: srtt %v healthy %v; want %v %v", tc.rtt, tc.err, st.srtt, st.healthy, tc.wantSRTT, tc.wantHealthy)
		}
	}
}

// TestPeerRoundTripMetric: each member observes its peers' round-trip
// times into etcd_network_peer_round_trip_time_seconds{To}.
func TestPeerRoundTripMetric(t *testing.T) {
	saved := peerProbeTimes
	peerProbeTimes = probeTimes{probe: 5 * time.Millisecond, first: 20 * time.Millisecond, healthy: 20 * time.Millisecond, unhealthy: 20 * time.Millisecond}
	t.Cleanup(func() { peerProbeTimes = saved })
	tc := newTestCluster(t, 3)
	tc.leader()
	s := tc.servers[0]
	const attemptsMax = 500
	for try := 0; ; try++ {
		n, err := testutil.GatherAndCount(s.metrics.reg, "etcd_network_peer_round_trip_time_seconds")
		if err != nil {
			t.Fatal(err)
		}
		if n == 2 {
			break
		}
		if try == attemptsMax {
			t.Fatalf("%d series of etcd_network_peer_round_trip_time_seconds, want one per peer (2)", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fams, err := s.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{hexID(tc.servers[1].node.ID()): true, hexID(tc.servers[2].node.ID()): true}
	for _, f := range fams {
		if f.GetName() != "etcd_network_peer_round_trip_time_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			to := m.GetLabel()[0].GetValue()
			if !want[to] || m.GetHistogram().GetSampleCount() == 0 {
				t.Fatalf("series To=%s with %d samples; want the peers %v", to, m.GetHistogram().GetSampleCount(), want)
			}
		}
	}
}
