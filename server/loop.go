package server

import (
	"context"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/corrupt"
	"github.com/detcd/detcd/driver"
)

// newDriver puts the node on the one driver, with the real runtime.
func (s *Server) newDriver(o opened) error {
	loop, err := driver.NewLoop(driver.LoopConfig{Tick: s.cfg.HeartbeatInterval, Fatal: s.life.die, AfterTurn: s.afterTurn, BeforeStep: s.cfg.beforeStep})
	if err != nil {
		return err
	}
	d, err := driver.New(driver.Config{Node: s.node, Disk: s.disk, Env: loop, Transport: s.peers, Observer: s.inst.Observer(), Logger: s.log})
	if err != nil {
		return err
	}
	s.loop, s.drv = loop, d
	s.peers.attach(loop, d, s.disk, s.calls().hash)
	fcfg := s.cfg.FrontendConfig(s.newMemberID)
	fcfg.CertUsers = o.tls.client != nil
	fcfg.Tokens = o.tokens
	fcfg.WatchBatchGap, fcfg.WatchBusyOuts, fcfg.WatchClock = driver.DefaultWatchBatchGap, driver.DefaultWatchBusyOuts, loop
	s.Frontend = driver.NewFrontend(d, loop, fcfg)
	return nil
}

// afterTurn runs on the loop after every turn.
func (s *Server) afterTurn() {
	s.peers.syncPeers()
	s.Frontend.Publish()
	s.inst.Publish(s.node)
	s.life.afterTurn(s.node)
}

// loopCaller runs functions on the loop, which owns the node, for
// goroutines off it, and waits for them.
type loopCaller struct {
	loop *driver.Loop
	node *core.Node
}

func (s *Server) calls() loopCaller {
	return loopCaller{loop: s.loop, node: s.node}
}

// call runs fn on the loop and waits for it.
func (c loopCaller) call(ctx context.Context, fn func(*core.Node)) error {
	return driver.Await(ctx, c.loop, func(done func()) { fn(c.node); done() })
}

// hash is the member's HashKV at rev (0: its current revision), and its
// current revision: the hashFunc the peer transport answers with.
func (c loopCaller) hash(ctx context.Context, rev int64) (mvcc.KVHash, int64, error) {
	return corrupt.LocalHash(ctx, c.call, rev)
}
