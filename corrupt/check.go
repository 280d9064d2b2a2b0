package corrupt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
)

// ErrDataInconsistency is why a member refuses to start after the initial
// check: its hash differs from a peer's.
var ErrDataInconsistency = errors.New("found data inconsistency with peers")

// ReplayWaitMax bounds the initial check's wait for the member to replay
// its log.
const ReplayWaitMax = 5 * time.Minute

// OnLoop runs fn on the member's loop, which owns the node, and waits for
// it.
type OnLoop func(ctx context.Context, fn func(*core.Node)) error

// Runtime is what a check round needs of the runtime it runs in.
type Runtime interface {
	// WithTimeout is the context a step of a round waits under, ending
	// after d (the server's); the simulator's waits end in virtual time.
	WithTimeout(d time.Duration) (context.Context, context.CancelFunc)
	// OnLoop runs fn on the member's loop and waits for it.
	OnLoop(ctx context.Context, fn func(*core.Node)) error
	// PeerHashes asks every other member, in order of id, for its hash at
	// rev, as their LocalHash answers.
	PeerHashes(rev int64) []PeerHash
}

// Requests is the member's request path (a driver.Frontend).
type Requests interface {
	SerializableView(ctx context.Context) (*mvcc.View, *pb.ResponseHeader, error)
	Do(ctx context.Context, r core.Request) (core.Response, error)
}

// Checker runs one member's check rounds; the runtime decides when.
type Checker struct {
	Log      *slog.Logger
	ID       uint64
	Timeout  time.Duration // etcd's request timeout
	Runtime  Runtime
	Requests Requests
	// PlantedBug plants a verdict bug (detcdbugs builds only).
	PlantedBug string
}

// LocalHash is the member's HashKV at rev (0: its current revision), and
// its current revision: what it answers a peer's hash request with.
func LocalHash(ctx context.Context, onLoop OnLoop, rev int64) (mvcc.KVHash, int64, error) {
	var v *mvcc.View
	var kept []mvcc.KVHash
	if err := onLoop(ctx, func(n *core.Node) { v, kept = n.HashView(), n.CompactionHashes() }); err != nil {
		return mvcc.KVHash{}, 0, err
	}
	h, err := core.KVHashAt(v, kept, rev)
	return h, int64(v.Rev()), err
}

func (c *Checker) hash(ctx context.Context) (mvcc.KVHash, int64, error) {
	return LocalHash(ctx, c.Runtime.OnLoop, 0)
}

// Initial is etcd's InitialCheck, for a restarting member: once it has
// applied what its log had committed, it compares its hash with each
// peer's at the same revision.
func (c *Checker) Initial() error {
	id := fmt.Sprintf("%x", c.ID)
	c.Log.Info("starting initial corruption check", "local-member-id", id, "timeout", c.Timeout.String())
	// Replaying the log is local work, which a long log makes longer than
	// a request may take.
	rctx, rcancel := c.Runtime.WithTimeout(ReplayWaitMax)
	defer rcancel()
	if _, _, err := c.Requests.SerializableView(rctx); err != nil {
		return fmt.Errorf("%s failed to fetch hash (%w)", id, err)
	}
	ctx, cancel := c.Runtime.WithTimeout(c.Timeout)
	defer cancel()
	h, _, err := c.hash(ctx)
	if err != nil {
		return fmt.Errorf("%s failed to fetch hash (%w)", id, err)
	}
	mismatch, notes := c.initialMismatches(h, c.Runtime.PeerHashes(int64(h.Rev)))
	c.logNotes(notes)
	if mismatch > 0 {
		return fmt.Errorf("%s %w", id, ErrDataInconsistency)
	}
	c.Log.Info("initial corruption checking passed; no corruption", "local-member-id", id)
	return nil
}

// raiseCorrupt proposes the CORRUPT alarm for a member.
func (c *Checker) raiseCorrupt(member uint64) {
	c.Log.Error("raising the CORRUPT alarm", "member", fmt.Sprintf("%x", member))
	ctx, cancel := c.Runtime.WithTimeout(c.Timeout)
	defer cancel()
	if err := c.Runtime.OnLoop(ctx, func(n *core.Node) { n.RaiseCorrupt(member) }); err != nil {
		c.Log.Warn("could not raise the CORRUPT alarm", "member", fmt.Sprintf("%x", member), "err", err)
	}
}

// Periodic is etcd's PeriodicCheck, on the leader: the leader's hash, the
// peers' at its revision, then the leader's again after a linearizable
// read, so that every peer has had the time to apply what the leader had.
func (c *Checker) Periodic() error {
	ctx, cancel := c.Runtime.WithTimeout(c.Timeout)
	defer cancel()
	h, _, err := c.hash(ctx)
	if err != nil {
		return err
	}
	peers := c.Runtime.PeerHashes(int64(h.Rev))
	rctx, rcancel := c.Runtime.WithTimeout(c.Timeout)
	defer rcancel()
	resp, err := c.Requests.Do(rctx, core.Request{ReadIndex: true})
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return err
	}
	h2, rev2, err := c.hash(rctx)
	if err != nil {
		return err
	}
	id, ok, notes := c.periodicSuspect(h, h2, rev2, peers)
	c.logNotes(notes)
	if ok {
		c.raiseCorrupt(id)
	}
	c.Log.Info("finished peer corruption check")
	return nil
}

// CompactHash is etcd's CompactHashCheck, on the leader: for the hashes
// kept at compactions after checked, the last revision checked on the
// whole cluster, newest first, it asks the peers for theirs until one
// revision could be checked. It returns the newest revision checked on
// the whole cluster.
func (c *Checker) CompactHash(checked int64) int64 {
	ctx, cancel := c.Runtime.WithTimeout(c.Timeout)
	defer cancel()
	var kept []mvcc.KVHash
	if err := c.Runtime.OnLoop(ctx, func(n *core.Node) { kept = n.CompactionHashes() }); err != nil {
		return checked
	}
	slices.Reverse(kept)
	for _, h := range kept {
		if int64(h.Rev) <= checked {
			break
		}
		peers := c.Runtime.PeerHashes(int64(h.Rev))
		if len(peers) == 0 {
			continue
		}
		alarms, done, all, notes := c.compactHashVerdict(h, peers)
		c.logNotes(notes)
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
