package driver

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/auth"
	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/core/watch"
	"github.com/detcd/detcd/grpcsvc"
)

// Runtime is how request handlers reach the loop and wait for it: the
// real one's handlers are goroutines, the simulator's are tasks it steps
// in virtual time.
type Runtime interface {
	// Post runs fn on the loop. It waits while the loop's inbox is full,
	// until ctx ends or the member stops.
	Post(ctx context.Context, fn func()) error
	// NewSignal returns a one-shot signal for a handler to wait on.
	NewSignal() Signal
	// Go runs fn, a handler's helper (a stream's receive side), apart
	// from the handler: a goroutine, or a task of the simulated world.
	Go(fn func())
}

// Await runs start on the loop and waits until start's work calls done,
// which it may do at once or from a later turn (an answer, a view): how
// a handler, the server's timers or the simulator's tasks wait for the
// loop. It ends early when ctx does or the member stops.
func Await(ctx context.Context, rt Runtime, start func(done func())) error {
	sig := rt.NewSignal()
	return postAndWait(ctx, rt, sig, func() { start(sig.Fire) })
}

// postAndWait runs fn on the loop and waits for sig, which fn's work
// fires: Await's steps, which Frontend.Do takes with a signal and a
// start of its own, allocated with its request.
func postAndWait(ctx context.Context, rt Runtime, sig Signal, fn func()) error {
	if err := rt.Post(ctx, fn); err != nil {
		return err
	}
	return sig.Wait(ctx)
}

// Signal is what a handler waits on: Fire (on the loop, or from any
// goroutine in the real runtime) ends Wait. Wait also ends when ctx does,
// or with core.ErrStopped when the member stops.
type Signal interface {
	Fire()
	Wait(ctx context.Context) error
}

// Tokens checks and issues signed tokens (JWT); nil with simple tokens,
// which core hands out and checks itself.
type Tokens interface {
	Verify(token string) (user string, authRev uint64, ok bool)
	Sign(user string, authRev uint64) (string, error)
}

// FrontendConfig is the part of a member's configuration its request
// handlers need.
type FrontendConfig struct {
	MaxTxnOps, MaxRequestBytes, BcryptCost int
	Version                                string
	SnapshotDir                            string
	// SnapshotScratch, if set, makes Snapshot's scratch file instead of
	// a temporary directory in SnapshotDir (the simulator's, in memory).
	SnapshotScratch func() (path string, remove func(), err error)
	Tokens          Tokens
	// CertUsers takes a request's user from its client certificate when
	// it carries no token (client certificate auth is on).
	CertUsers bool
	// NewMemberID chooses the id of a member added at runtime.
	NewMemberID func(peerURLs []string) uint64
	// WatchBatchGap, if positive (and WatchClock set), is the least time
	// between two batches of a busy watch stream's responses, one whose
	// last batch held at least WatchBusyOuts responses: see
	// watchSink.Next. The server sets DefaultWatchBatchGap and
	// DefaultWatchBusyOuts; the simulator draws both, smaller outs for
	// its streams of a few watchers.
	WatchBatchGap time.Duration
	WatchBusyOuts int
	// WatchClock tells the time and waits for WatchBatchGap: the real
	// runtime (Loop), or the simulator's virtual time.
	WatchClock Clock
}

// Clock is wall time for a runtime that has it.
type Clock interface {
	Now() time.Time
	// Sleep waits d, or until ctx ends (with its error).
	Sleep(ctx context.Context, d time.Duration) error
}

// DefaultWatchBatchGap is the server's WatchBatchGap: etcd's own
// batching delay (it retries every 10 ms the watchers whose stream's
// queue of 128 responses was full), enough to merge a fast writer's
// revisions a dozen or more to a response on a stream that carries a
// thousand watchers, while a stream that keeps up never waits.
const DefaultWatchBatchGap = 10 * time.Millisecond

// DefaultWatchBusyOuts is the server's WatchBusyOuts: a stream that keeps
// up with its watchers' events takes a revision's responses at a time,
// fewer than this on all but the busiest streams.
const DefaultWatchBusyOuts = 64

// Frontend is a member's grpcsvc.Backend: what etcd's services call, over
// the one driver. Handlers call it from their own goroutines (tasks);
// only Publish runs on the loop.
type Frontend struct {
	cfg FrontendConfig
	rt  Runtime
	d   *Driver

	// Published by the loop for handlers.
	rev, compactRev atomic.Int64
	leader          atomic.Uint64
	authEnabled     atomic.Bool
	perms           atomic.Pointer[auth.Perms]
	ticks           atomic.Int64
	learner         atomic.Bool
	view            atomic.Pointer[publishedView]
	// viewRead is set by a serializable read since the loop last
	// published a view: while reads come, Publish makes the view of each
	// new revision before anyone asks, so that a read after a write does
	// not wait for the loop; without them it makes none (a view makes
	// the key space's next write copy what it changes).
	viewRead atomic.Bool

	// bug is the planted bug the node's config names (detcdbugs builds).
	bug string

	tokens     tokenCache
	nextStream atomic.Uint64
	// sinks are the open watch streams, for Drain.
	mu       sync.Mutex
	sinks    map[watch.StreamID]*watchSink
	draining bool
}

type publishedView struct {
	view *mvcc.View
	hdr  *pb.ResponseHeader
}

// NewFrontend returns the handlers' side of d, reaching it through rt.
func NewFrontend(d *Driver, rt Runtime, cfg FrontendConfig) *Frontend {
	f := &Frontend{cfg: cfg, rt: rt, d: d, sinks: map[watch.StreamID]*watchSink{}}
	if core.PlantedBugsAvailable() {
		f.bug = d.node.Config().PlantedBug
	}
	f.Publish()
	return f
}

// Publish makes the loop's state visible to handlers; the runtime calls
// it on the loop after every turn.
func (f *Frontend) Publish() {
	n := f.d.node
	f.rev.Store(n.Rev())
	f.compactRev.Store(n.CompactRev())
	f.leader.Store(n.Leader())
	f.authEnabled.Store(n.AuthEnabled())
	f.perms.Store(n.AuthPerms())
	f.ticks.Store(n.Ticks())
	f.learner.Store(n.IsLearner())
	if f.viewRead.Load() && !f.viewCurrent(f.view.Load()) && n.LocalReadsReady() {
		v, hdr := n.View()
		f.view.Store(&publishedView{view: v, hdr: hdr})
		f.viewRead.Store(false)
	}
}

// viewCurrent reports whether pv holds everything applied, as last
// published.
func (f *Frontend) viewCurrent(pv *publishedView) bool {
	return pv != nil && int64(pv.view.Rev()) == f.rev.Load() && int64(pv.view.CompactRev()) == f.compactRev.Load()
}

// Leader is the member's leader as last published, 0 if none; with
// IsLearner it makes the Frontend a grpcsvc.Role for the Guard.
func (f *Frontend) Leader() uint64 { return f.leader.Load() }

// IsLearner reports whether the member is a learner, as last published.
func (f *Frontend) IsLearner() bool { return f.learner.Load() }

// Rev and CompactRev are the revisions as last published.
func (f *Frontend) Rev() int64        { return f.rev.Load() }
func (f *Frontend) CompactRev() int64 { return f.compactRev.Load() }

// Do implements grpcsvc.Backend. It waits only for its own answer and the
// caller's context: a stopping member answers every request it took.
func (f *Frontend) Do(ctx context.Context, r core.Request) (core.Response, error) {
	c := &call{f: f, r: r}
	if err := f.credentials(ctx, &c.r); err != nil {
		return core.Response{ID: r.ID, Err: err}, nil
	}
	// Not Await, whose closures would cost allocations on every
	// request's path: c holds the signal and the start.
	c.sig = f.rt.NewSignal()
	if err := postAndWait(ctx, f.rt, c.sig, c.start); err != nil {
		return core.Response{}, err
	}
	return c.resp, nil
}

// call is a request of Do on its way through the loop and back: one
// allocation holds what the handler and the loop share.
type call struct {
	f    *Frontend
	r    core.Request
	resp core.Response
	sig  Signal
}

// start hands the request to the driver; on the loop.
func (c *call) start() { c.f.d.Request(c.r, c.answer) }

// answer takes the response; on the loop.
func (c *call) answer(x core.Response) {
	c.resp = x
	// Published before the caller wakes: what it does next (a read off
	// the loop, say) sees at least what this answer saw.
	c.f.Publish()
	c.sig.Fire()
}

// credentials fills in who sends r: the token the client sent (a JWT is
// checked here, off the loop, and core gets what it says), else the
// common name of its client certificate.
func (f *Frontend) credentials(ctx context.Context, r *core.Request) error {
	if r.Token == "" {
		tok, sent := grpcsvc.TokenFrom(ctx)
		if sent && tok == "" && f.authEnabled.Load() {
			return auth.ErrInvalidAuthToken
		}
		r.Token = tok
	}
	if r.Token != "" && f.cfg.Tokens != nil {
		user, rev, ok := f.cfg.Tokens.Verify(r.Token)
		if !ok && f.authEnabled.Load() {
			return auth.ErrInvalidAuthToken
		}
		r.Token, r.TokenUser, r.TokenRevision = "", user, rev
	}
	if r.Token == "" && r.TokenUser == "" && f.cfg.CertUsers {
		r.CertUser = grpcsvc.CertUserFrom(ctx)
	}
	return nil
}

// SerializableView implements grpcsvc.Backend: the published view if it
// holds everything applied, else a new one from the loop.
func (f *Frontend) SerializableView(ctx context.Context) (*mvcc.View, *pb.ResponseHeader, error) {
	if !f.viewRead.Load() {
		f.viewRead.Store(true)
	}
	if pv := f.view.Load(); f.viewCurrent(pv) {
		return pv.view, pv.hdr, nil
	}
	var pv publishedView
	err := Await(ctx, f.rt, func(done func()) {
		f.d.View(func(v *mvcc.View, hdr *pb.ResponseHeader) {
			pv = publishedView{view: v, hdr: hdr}
			f.view.Store(&pv)
			done()
		})
	})
	if err != nil {
		return nil, nil, err
	}
	return pv.view, pv.hdr, nil
}

// Caller implements grpcsvc.Backend.
func (f *Frontend) Caller(ctx context.Context) (grpcsvc.Caller, error) {
	var r core.Request
	if err := f.credentials(ctx, &r); err != nil {
		return grpcsvc.Caller{}, err
	}
	switch {
	case r.TokenUser != "":
		return grpcsvc.Caller{User: r.TokenUser, Revision: r.TokenRevision, Dated: true, Known: true}, nil
	case !f.authEnabled.Load():
		return grpcsvc.Caller{}, nil // auth went off meanwhile: the loop decides
	case r.Token != "":
		return f.tokenCaller(ctx, r.Token)
	case r.CertUser != "":
		return grpcsvc.Caller{User: r.CertUser, Known: true}, nil
	}
	return grpcsvc.Caller{}, auth.ErrUserEmpty
}

// Perms implements grpcsvc.Backend.
func (f *Frontend) Perms() *auth.Perms { return f.perms.Load() }

// AuthEnabled implements grpcsvc.Backend.
func (f *Frontend) AuthEnabled() bool { return f.authEnabled.Load() }

// MaxTxnOps implements grpcsvc.Backend.
func (f *Frontend) MaxTxnOps() int { return f.cfg.MaxTxnOps }

// MaxRequestBytes implements grpcsvc.Backend.
func (f *Frontend) MaxRequestBytes() int { return f.cfg.MaxRequestBytes }

// BcryptCost implements grpcsvc.Backend.
func (f *Frontend) BcryptCost() int { return f.cfg.BcryptCost }

// Version implements grpcsvc.Backend.
func (f *Frontend) Version() string { return f.cfg.Version }

// SnapshotScratch implements grpcsvc.Backend.
func (f *Frontend) SnapshotScratch() (string, func(), error) {
	if f.cfg.SnapshotScratch != nil {
		return f.cfg.SnapshotScratch()
	}
	return grpcsvc.TempDirScratch(f.cfg.SnapshotDir)
}

// PlantedBug names the bug the member plants, for the services whose
// bugs are planted outside core (detcdbugs builds; "" in others).
func (f *Frontend) PlantedBug() string { return f.bug }

// Go implements grpcsvc.Backend.
func (f *Frontend) Go(fn func()) { f.rt.Go(fn) }

// NewSignal implements grpcsvc.Backend.
func (f *Frontend) NewSignal() grpcsvc.Signal { return f.rt.NewSignal() }

// NewMemberID implements grpcsvc.Backend.
func (f *Frontend) NewMemberID(peerURLs []string) uint64 { return f.cfg.NewMemberID(peerURLs) }

// SignToken implements grpcsvc.Backend.
func (f *Frontend) SignToken(user string, rev uint64) (string, error) {
	if f.cfg.Tokens == nil {
		return "", nil
	}
	return f.cfg.Tokens.Sign(user, rev)
}
