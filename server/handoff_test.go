package server

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

// raftTerm asks member i for its term.
func (tc *testCluster) raftTerm(i int) uint64 {
	tc.t.Helper()
	st, err := tc.client(i).Status(context.Background(), tc.cfgs[i].AdvertiseClientURLs[0])
	if err != nil {
		tc.t.Fatalf("status of member %d: %v", i, err)
	}
	return st.RaftTerm
}

// TestStopHandsOffLeadership: a leader that stops hands its leadership to
// another voter first, as etcd's Stop does, so the others do not wait out
// an election timeout; the term rises once.
func TestStopHandsOffLeadership(t *testing.T) {
	logs := make([]*logBuffer, 3)
	tc := newTestClusterWith(t, 3, "http", func(c *Config) {
		i := len(c.Name) - 1 // m0, m1, m2
		logs[c.Name[i]-'0'] = &logBuffer{}
		c.Logger = slog.New(slog.NewTextHandler(logs[c.Name[i]-'0'], nil))
	})
	lead := tc.leader()
	term := tc.raftTerm(lead)
	tc.stop(lead)
	if !strings.Contains(logs[lead].String(), "leadership transferred before stopping") {
		t.Fatalf("the stopped leader did not hand its leadership over; its log:\n%s", logs[lead].String())
	}
	next := tc.leader()
	if got := tc.raftTerm(next); got != term+1 {
		t.Errorf("term after the hand-off %d, want %d", got, term+1)
	}

	// The new leader, alone with a follower, hands over as well: the
	// member stopped a moment ago is out of contact (its stream broke),
	// so it is not the one chosen. The last member has nothing to hand.
	tc.stop(next)
	if !strings.Contains(logs[next].String(), "leadership transferred before stopping") {
		t.Fatalf("the second leader did not hand its leadership over; its log:\n%s", logs[next].String())
	}
	// It leads still, unless check-quorum deposed it already; either
	// way it says why it hands nothing over.
	last := 3 - lead - next
	tc.stop(last)
	if got := logs[last].String(); !strings.Contains(got, "leadership transfer before stopping failed") &&
		!strings.Contains(got, "skipped leadership transfer; local server is not leader") {
		t.Errorf("the last member's log does not say why it handed nothing over:\n%s", got)
	}
}

// TestStopSingleMemberSkipsHandOff: a single voter has no one to hand its
// leadership to, and says so as etcd does, instead of claiming a transfer.
func TestStopSingleMemberSkipsHandOff(t *testing.T) {
	log := &logBuffer{}
	tc := newTestClusterWith(t, 1, "http", func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(log, nil))
	})
	tc.stop(tc.leader())
	got := log.String()
	if want := "skipped leadership transfer for single voting member cluster"; !strings.Contains(got, want) {
		t.Errorf("log lacks %q:\n%s", want, got)
	}
	if strings.Contains(got, "leadership transferred") {
		t.Errorf("a single member claims a transfer:\n%s", got)
	}
}
