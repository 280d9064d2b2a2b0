package server

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/corrupt"
)

// etcd's corruption checks (package corrupt, which decides what a round
// asks and what the answers say) on the real runtime: goroutines on the
// wall clock run the rounds, and peers are asked over the peer transport
// (etcd's /members/hashkv).

// ErrDataInconsistency is why a member refuses to start after the initial
// check: its hash differs from a peer's.
var ErrDataInconsistency = corrupt.ErrDataInconsistency

// corruptChecks runs the checks for one member: it owns their timers.
type corruptChecks struct {
	log *slog.Logger
	// every is --corrupt-check-time, 0 for none; compactEvery is
	// --compact-hash-check-time, 0 without the CompactHashCheck gate.
	every, compactEvery time.Duration
	status              *memberStatus
	stopping            <-chan struct{}
	check               *corrupt.Checker
}

func newCorruptChecks(s *Server) *corruptChecks {
	timeout := s.cfg.requestTimeout()
	rt := &corruptRuntime{log: s.log, id: s.node.ID(), timeout: timeout, calls: s.calls(), peers: s.peers}
	c := &corruptChecks{log: s.log, every: s.cfg.CorruptCheckTime, status: s.status, stopping: s.life.stopping,
		check: &corrupt.Checker{Log: s.log, ID: s.node.ID(), Timeout: timeout, Runtime: rt, Requests: s.Frontend}}
	if gates, _ := s.cfg.gates(); gates["CompactHashCheck"] {
		c.compactEvery = s.cfg.CompactHashCheckTime
	}
	return c
}

// start runs the periodic and compaction hash checks until the member
// stops.
func (c *corruptChecks) start() {
	if c.every > 0 {
		go c.monitorKVHash()
	}
	if c.compactEvery > 0 {
		go c.monitorCompactHash()
	}
}

// initial is etcd's InitialCheck, for a member that restarts with the
// InitialCorruptCheck gate.
func (c *corruptChecks) initial() error { return c.check.Initial() }

// monitorKVHash runs the periodic check every --corrupt-check-time, on
// the leader.
func (c *corruptChecks) monitorKVHash() {
	c.log.Info("enabled corruption checking", "interval", c.every.String())
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-c.stopping:
			return
		case <-t.C:
		}
		if !c.status.isLeader() {
			continue
		}
		if err := c.check.Periodic(); err != nil {
			c.log.Warn("failed to check hash KV", "err", err)
		}
	}
}

// monitorCompactHash runs the compaction hash check every
// --compact-hash-check-time, on the leader.
func (c *corruptChecks) monitorCompactHash() {
	var checked int64 // the newest revision checked on every member
	for {
		select {
		case <-c.stopping:
			return
		case <-time.After(c.compactEvery):
		}
		if c.status.isLeader() {
			checked = c.check.CompactHash(checked)
		}
	}
}

// corruptRuntime is the checks' corrupt.Runtime: the loop through
// loopCaller, peers through the peer transport.
type corruptRuntime struct {
	log     *slog.Logger
	id      uint64
	timeout time.Duration // etcd's request timeout
	calls   loopCaller
	peers   *peerTransport
}

// WithTimeout implements corrupt.Runtime.
func (r *corruptRuntime) WithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// OnLoop implements corrupt.Runtime.
func (r *corruptRuntime) OnLoop(ctx context.Context, fn func(*core.Node)) error {
	return r.calls.call(ctx, fn)
}

// PeerHashes implements corrupt.Runtime: each peer URL of a member in
// turn until one answers, as etcd does.
func (r *corruptRuntime) PeerHashes(rev int64) []corrupt.PeerHash {
	var out []corrupt.PeerHash
	ms := r.peers.memberList()
	slices.SortFunc(ms, func(a, b core.Member) int { return cmp.Compare(a.ID, b.ID) })
	for _, m := range ms {
		if m.ID == r.id || len(m.PeerURLs) == 0 {
			continue
		}
		p := corrupt.PeerHash{ID: m.ID}
		for _, u := range m.PeerURLs {
			var reply corrupt.Reply
			if reply, p.Err = r.peers.dialer.askHashKV(u, r.peers.clusterID, rev, r.timeout); p.Err == nil {
				p.Reply = &reply
				break
			}
			r.log.Warn("failed hash kv request", "remote-peer-endpoint", u, "requested-revision", rev, "err", p.Err)
		}
		out = append(out, p)
	}
	return out
}
