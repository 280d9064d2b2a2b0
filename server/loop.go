package server

import (
	"context"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/driver"
)

// newDriver puts the node on the one driver, with the real runtime.
func (s *Server) newDriver(wal *walMetrics) error {
	loop, err := driver.NewLoop(driver.LoopConfig{Tick: s.cfg.HeartbeatInterval, Fatal: s.die, AfterTurn: s.afterTurn})
	if err != nil {
		return err
	}
	d, err := driver.New(driver.Config{Node: s.node, Disk: s.disk, Env: loop, Transport: s.peers, Observer: wal, Logger: s.log})
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

// publish makes the loop's state visible off the loop; on the loop.
func (s *Server) publish() {
	p := publishedOf(s.node)
	if s.status.store(p) {
		s.metrics.leaderChanges.Inc()
	}
	s.metrics.alarms.publish(p.alarms)
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
