package server

import (
	"context"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/auth"
	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/driver"
	"github.com/detcd/detcd/grpcsvc"
)

// newDriver puts the node on the one driver, with the real runtime.
func (s *Server) newDriver() error {
	loop, err := driver.NewLoop(driver.LoopConfig{Tick: s.cfg.HeartbeatInterval, Fatal: s.die, AfterTurn: s.afterTurn})
	if err != nil {
		return err
	}
	d, err := driver.New(driver.Config{Node: s.node, Disk: s.disk, Env: loop, Transport: (*transport)(s), Observer: walMetrics{s.metrics}, Logger: s.log})
	if err != nil {
		return err
	}
	s.loop, s.drv = loop, d
	return nil
}

// afterTurn runs on the loop after every turn.
func (s *Server) afterTurn() {
	s.syncPeers()
	s.publish()
	if !s.readyDone && s.node.Published() {
		s.readyDone = true
		s.logPublished()
		close(s.ready)
	}
	s.noteClusterVersion()
}

// walMetrics feeds the log writer's timings to etcd's disk metrics.
type walMetrics struct {
	m *metrics
}

func (w walMetrics) Ready(*core.Ready) {}
func (w walMetrics) Wrote(p *core.Persist, took time.Duration) {
	w.m.walWrite.Observe(took.Seconds())
	bytes := 0
	for _, e := range p.Entries {
		bytes += len(e.Data)
	}
	w.m.walBytes.Add(float64(bytes))
}
func (w walMetrics) Synced(took time.Duration)                        { w.m.fsync.Observe(took.Seconds()) }
func (w walMetrics) Durable(uint64)                                   {}
func (w walMetrics) Checkpointed(uint64, int64, time.Duration, error) {}

// publish makes the loop's state visible to handlers and metrics.
func (s *Server) publish() {
	s.rev.Store(s.node.Rev())
	s.compactRev.Store(s.node.CompactRev())
	s.term.Store(s.node.Term())
	s.learner.Store(s.node.IsLearner())
	s.authEnabled.Store(s.node.AuthEnabled())
	if l := s.node.Leader(); l != s.leader.Swap(l) {
		s.metrics.leaderChanges.Inc()
	}
	size, inUse, keys := s.node.Sizes()
	s.metrics.size.Store(size)
	s.metrics.inUse.Store(inUse)
	s.metrics.keys.Store(int64(keys))
	s.metrics.applied.Store(s.node.AppliedIndex())
	s.metrics.commit.Store(s.node.Commit())
	s.metrics.authRev.Store(s.node.AuthRevision())
	s.metrics.noSpace.Store(s.node.NoSpace())
	s.metrics.corrupt.Store(s.node.Corrupt())
	s.metrics.alarms.publish(s.node.Alarms())
}

// onLoop runs fn on the loop, which owns the node, and waits for it.
func (s *Server) onLoop(ctx context.Context, fn func(*core.Node)) error {
	done := make(chan struct{})
	if err := s.loop.Post(ctx, func() { fn(s.node); close(done) }); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopping:
		return core.ErrStopped
	}
}

// Do implements grpcsvc.Backend. It waits only on its own channel and
// the caller's context: Stop lets in-flight requests finish (the loop
// answers every request it took) before it stops the loop.
func (s *Server) Do(ctx context.Context, r core.Request) (core.Response, error) {
	if err := s.credentials(ctx, &r); err != nil {
		return core.Response{ID: r.ID, Err: err}, nil
	}
	done := make(chan core.Response, 1)
	if err := s.loop.Post(ctx, func() { s.drv.Request(r, func(resp core.Response) { done <- resp }) }); err != nil {
		return core.Response{}, err
	}
	select {
	case resp := <-done:
		return resp, nil
	case <-ctx.Done():
		return core.Response{}, ctx.Err()
	}
}

// credentials fills in who sends r: the token the client sent (a JWT
// checked here, off the loop; core gets what it says), else the common
// name of its client certificate.
func (s *Server) credentials(ctx context.Context, r *core.Request) error {
	if r.Token == "" {
		tok, sent := grpcsvc.TokenFrom(ctx)
		if sent && tok == "" && s.authEnabled.Load() {
			return auth.ErrInvalidAuthToken
		}
		r.Token = tok
	}
	if r.Token != "" && s.jwt != nil {
		user, rev, ok := s.jwt.verify(r.Token)
		if !ok && s.authEnabled.Load() {
			return auth.ErrInvalidAuthToken
		}
		r.Token, r.TokenUser, r.TokenRevision = "", user, rev
	}
	if r.Token == "" && r.TokenUser == "" && s.tls.client != nil {
		r.CertUser = grpcsvc.CertUserFrom(ctx)
	}
	return nil
}

// SerializableView implements grpcsvc.Backend: the published view if it
// holds everything applied, else a new one from the loop.
func (s *Server) SerializableView(ctx context.Context) (*mvcc.View, *pb.ResponseHeader, error) {
	if pv := s.view.Load(); pv != nil && int64(pv.view.Rev()) == s.rev.Load() && int64(pv.view.CompactRev()) == s.compactRev.Load() {
		return pv.view, pv.hdr, nil
	}
	ch := make(chan publishedView, 1)
	err := s.loop.Post(ctx, func() {
		s.drv.View(func(v *mvcc.View, hdr *pb.ResponseHeader) {
			pv := publishedView{view: v, hdr: hdr}
			s.view.Store(&pv)
			ch <- pv
		})
	})
	if err != nil {
		return nil, nil, err
	}
	select {
	case pv := <-ch:
		return pv.view, pv.hdr, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-s.stopping:
		return nil, nil, core.ErrStopped
	}
}
