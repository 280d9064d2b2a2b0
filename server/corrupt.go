package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/driver"
)

// etcd's corruption checks. Members ask each other for HashKV at a
// revision over the peer transport (etcd's /members/hashkv):
//   - the initial check (InitialCorruptCheck gate): a restarting member
//     compares its hash with its peers' before it serves clients, and
//     refuses to start when one differs at the same compaction;
//   - the periodic check (--corrupt-check-time): the leader compares its
//     hash with its followers' and raises CORRUPT for the first member
//     found wrong;
//   - the compaction hash check (CompactHashCheck gate,
//     --compact-hash-check-time): the leader compares the hashes members
//     kept at their last compactions and raises CORRUPT for the members
//     outside the majority (for member 0, the whole cluster, if there is
//     no majority).
// Once applied, a CORRUPT alarm makes every member refuse writes (core).

// ErrDataInconsistency is why a member refuses to start after the initial
// check: its hash differs from a peer's.
var ErrDataInconsistency = errors.New("found data inconsistency with peers")

// replayWaitMax bounds the initial check's wait for the member to replay
// its log.
const replayWaitMax = 5 * time.Minute

// corruptChecks runs the checks for one member: it owns their timers,
// gathers the hashes from the loop and the peers, and acts on the
// verdicts, which corrupt_verdict.go decides.
type corruptChecks struct {
	log     *slog.Logger
	id      uint64
	timeout time.Duration // etcd's request timeout
	// every is --corrupt-check-time, 0 for none; compactEvery is
	// --compact-hash-check-time, 0 without the CompactHashCheck gate.
	every, compactEvery time.Duration
	status              *memberStatus
	calls               loopCaller
	frontend            *driver.Frontend
	peers               *peerTransport
	stopping            <-chan struct{}
}

func newCorruptChecks(s *Server) *corruptChecks {
	c := &corruptChecks{log: s.log, id: s.node.ID(), timeout: s.cfg.requestTimeout(), every: s.cfg.CorruptCheckTime,
		status: s.status, calls: s.calls(), frontend: s.Frontend, peers: s.peers, stopping: s.life.stopping}
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

// peerHashes asks every other member for its hash at rev, each peer URL in
// turn until one answers, as etcd does.
func (c *corruptChecks) peerHashes(rev int64) []peerHash {
	var out []peerHash
	ms := c.peers.memberList()
	slices.SortFunc(ms, func(a, b core.Member) int { return cmp.Compare(a.ID, b.ID) })
	for _, m := range ms {
		if m.ID == c.id || len(m.PeerURLs) == 0 {
			continue
		}
		p := peerHash{id: m.ID}
		for _, u := range m.PeerURLs {
			var r hashKVReply
			req := hashKVRequest{ClusterID: c.peers.clusterID, Revision: rev}
			if r, p.err = c.peers.dialer.askHashKV(u, req, c.timeout); p.err == nil {
				p.reply = &r
				break
			}
			c.log.Warn("failed hash kv request", "remote-peer-endpoint", u, "requested-revision", rev, "err", p.err)
		}
		out = append(out, p)
	}
	return out
}

// initial is etcd's InitialCheck, for a member that restarts with the
// InitialCorruptCheck gate: once it has applied what its log had
// committed, it compares its hash with each peer's at the same revision.
func (c *corruptChecks) initial() error {
	id := fmt.Sprintf("%x", c.id)
	c.log.Info("starting initial corruption check", "local-member-id", id, "timeout", c.timeout.String())
	// Replaying the log is local work, which a long log makes longer than
	// a request may take.
	rctx, rcancel := context.WithTimeout(context.Background(), replayWaitMax)
	defer rcancel()
	if _, _, err := c.frontend.SerializableView(rctx); err != nil {
		return fmt.Errorf("%s failed to fetch hash (%w)", id, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	h, _, err := c.calls.hash(ctx, 0)
	if err != nil {
		return fmt.Errorf("%s failed to fetch hash (%w)", id, err)
	}
	mismatch, notes := initialMismatches(h, c.peerHashes(int64(h.Rev)))
	logNotes(c.log, notes)
	if mismatch > 0 {
		return fmt.Errorf("%s %w", id, ErrDataInconsistency)
	}
	c.log.Info("initial corruption checking passed; no corruption", "local-member-id", id)
	return nil
}

// raiseCorrupt proposes the CORRUPT alarm for a member.
func (c *corruptChecks) raiseCorrupt(member uint64) {
	c.log.Error("raising the CORRUPT alarm", "member", fmt.Sprintf("%x", member))
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := c.calls.call(ctx, func(n *core.Node) { n.RaiseCorrupt(member) }); err != nil {
		c.log.Warn("could not raise the CORRUPT alarm", "member", fmt.Sprintf("%x", member), "err", err)
	}
}

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
		if err := c.periodic(); err != nil {
			c.log.Warn("failed to check hash KV", "err", err)
		}
	}
}

// periodic is etcd's PeriodicCheck: the leader's hash, the peers' at its
// revision, then the leader's again after a linearizable read, so that
// every peer has had the time to apply what the leader had.
func (c *corruptChecks) periodic() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	h, _, err := c.calls.hash(ctx, 0)
	if err != nil {
		return err
	}
	peers := c.peerHashes(int64(h.Rev))
	rctx, rcancel := context.WithTimeout(context.Background(), c.timeout)
	defer rcancel()
	resp, err := c.frontend.Do(rctx, core.Request{ReadIndex: true})
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return err
	}
	h2, rev2, err := c.calls.hash(rctx, 0)
	if err != nil {
		return err
	}
	id, ok, notes := periodicSuspect(c.id, h, h2, rev2, peers)
	logNotes(c.log, notes)
	if ok {
		c.raiseCorrupt(id)
	}
	c.log.Info("finished peer corruption check")
	return nil
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
			checked = c.compactHashCheck(checked)
		}
	}
}

// compactHashCheck is etcd's CompactHashCheck: for the hashes kept at
// compactions after the last revision checked, newest first, it asks the
// peers for theirs until one revision could be checked. It returns the
// newest revision checked on the whole cluster.
func (c *corruptChecks) compactHashCheck(checked int64) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	var kept []mvcc.KVHash
	if err := c.calls.call(ctx, func(n *core.Node) { kept = n.CompactionHashes() }); err != nil {
		return checked
	}
	slices.Reverse(kept)
	for _, h := range kept {
		if int64(h.Rev) <= checked {
			break
		}
		peers := c.peerHashes(int64(h.Rev))
		if len(peers) == 0 {
			continue
		}
		alarms, done, all, notes := compactHashVerdict(c.id, h, peers)
		logNotes(c.log, notes)
		for _, id := range alarms {
			c.raiseCorrupt(id)
		}
		if all {
			checked = max(checked, int64(h.Rev))
		}
		if done {
			break
		}
	}
	return checked
}
