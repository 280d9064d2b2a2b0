package server

import (
	"context"
	"time"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/driver"
)

// newDriver puts the node on the one driver, with the real runtime.
func (s *Server) newDriver() error {
	loop, err := driver.NewLoop(driver.LoopConfig{Tick: s.cfg.HeartbeatInterval, Fatal: s.die, AfterTurn: s.afterTurn})
	if err != nil {
		return err
	}
	d, err := driver.New(driver.Config{Node: s.node, Disk: s.disk, Env: loop, Transport: s.peers, Observer: walMetrics{s.metrics}, Logger: s.log})
	if err != nil {
		return err
	}
	s.loop, s.drv = loop, d
	s.peers.attach(loop, d, s.localHash)
	fcfg := driver.FrontendConfig{
		MaxTxnOps: s.cfg.MaxTxnOps, MaxRequestBytes: s.cfg.MaxRequestBytes, BcryptCost: s.cfg.BcryptCost,
		Version: Version, SnapshotDir: s.cfg.DataDir, CertUsers: s.tls.client != nil,
		NewMemberID: s.newMemberID,
	}
	if s.jwt != nil {
		fcfg.Tokens = s.jwt
	}
	s.Frontend = driver.NewFrontend(d, loop, fcfg)
	return nil
}

// afterTurn runs on the loop after every turn.
func (s *Server) afterTurn() {
	s.peers.syncPeers()
	s.Frontend.Publish()
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
	s.term.Store(s.node.Term())
	s.learner.Store(s.node.IsLearner())
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
