package server

import (
	"time"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/core/watch"
)

// run is the event loop: the only goroutine that touches the Node.
func (s *Server) run() {
	defer close(s.loopDone)
	ticker := time.NewTicker(s.cfg.HeartbeatInterval)
	defer ticker.Stop()
	waiters := map[core.RequestID]chan core.Response{}
	sinks := map[watch.StreamID]*watchSink{}
	var next core.RequestID
	var views []chan publishedView
	more := false
	take := func(c call) {
		next++
		c.req.ID = next
		waiters[next] = c.done
		s.node.Request(c.req)
	}
	for {
		if !more {
			// Block for the next event.
			select {
			case c := <-s.calls:
				take(c)
			case op := <-s.watchOps:
				s.handleWatchOp(sinks, op)
			case ch := <-s.viewReqs:
				views = append(views, ch)
			case id := <-s.persisted:
				s.node.Persisted(id)
			case <-ticker.C:
				s.node.Tick()
			case r := <-s.ckptDone:
				s.node.CheckpointDone(r.index, r.size, r.err)
			case h := <-s.hashes:
				s.node.CompactionHash(h)
			case in := <-s.peerIn:
				s.stepPeer(in)
			case r := <-s.snapDone:
				s.node.ReportSnapshot(r.to, r.ok)
			case id := <-s.unreach:
				s.node.ReportUnreachable(id)
			case fn := <-s.loopFns:
				fn()
			case <-s.stopping:
				s.shutdownLoop(waiters, sinks)
				return
			}
		}
		// Take everything else that is waiting, so that it shares this
		// turn's log write.
	drain:
		for i := 0; i < callBatchMax; i++ {
			select {
			case c := <-s.calls:
				take(c)
			case op := <-s.watchOps:
				s.handleWatchOp(sinks, op)
			case ch := <-s.viewReqs:
				views = append(views, ch)
			case id := <-s.persisted:
				s.node.Persisted(id)
			case r := <-s.ckptDone:
				s.node.CheckpointDone(r.index, r.size, r.err)
			case h := <-s.hashes:
				s.node.CompactionHash(h)
			case in := <-s.peerIn:
				s.stepPeer(in)
			case r := <-s.snapDone:
				s.node.ReportSnapshot(r.to, r.ok)
			case id := <-s.unreach:
				s.node.ReportUnreachable(id)
			case fn := <-s.loopFns:
				fn()
			default:
				break drain
			}
		}
		rd := s.node.Ready()
		more = rd.More
		if rd.Persist != nil || rd.Release != nil {
			s.enqueueWAL(walOp{persist: rd.Persist, release: rd.Release})
		}
		if c := rd.Checkpoint; c != nil {
			go s.writeCheckpoint(c)
		}
		for _, h := range rd.Hashes {
			go s.hashCompaction(h)
		}
		s.publish()
		if !s.readyDone && s.node.Published() {
			s.readyDone = true
			s.logPublished()
			close(s.ready)
		}
		s.noteClusterVersion()
		// After a restart, views wait until the member has applied what its
		// log had committed (see core's LocalReadsReady).
		if len(views) > 0 && s.node.LocalReadsReady() {
			pv := s.publishView()
			for _, ch := range views {
				ch <- pv
			}
			views = views[:0]
		}
		for _, r := range rd.Responses {
			if ch, ok := waiters[r.ID]; ok {
				ch <- r
				delete(waiters, r.ID)
			}
		}
		for _, o := range rd.Watch {
			if sink, ok := sinks[o.Stream]; ok {
				sink.push(o)
			}
		}
		s.syncPeers()
		s.sendRaft(rd.Messages)
		s.sendPeerMessages(rd.Peer)
		for _, snap := range rd.Snapshots {
			if p := s.peers.byID[snap.To]; p != nil {
				go s.sendSnapshot(snap, p.urls)
			} else {
				s.node.ReportSnapshot(snap.To, false)
			}
		}
		if err := s.node.Err(); err != nil {
			s.die(err)
		}
	}
}

// stepPeer hands the node what a peer sent.
func (s *Server) stepPeer(in peerIn) {
	switch {
	case in.done != nil:
		in.done <- s.node.StepSnapshot(in.raft, in.content)
	case in.raft != nil:
		if err := s.node.Step(in.raft); err != nil {
			s.log.Debug("step", "err", err)
		}
	case in.peer != nil:
		s.node.StepPeer(in.peer)
	}
}

// enqueueWAL hands a write to the WAL goroutine. While the queue is full
// it keeps taking durability notices, so the two goroutines never wait on
// each other.
func (s *Server) enqueueWAL(op walOp) {
	for {
		select {
		case s.walq <- op:
			return
		case id := <-s.persisted:
			s.node.Persisted(id)
		}
	}
}

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

func (s *Server) publishView() publishedView {
	v, hdr := s.node.View()
	pv := publishedView{view: v, hdr: hdr}
	s.view.Store(&pv)
	return pv
}

// shutdownLoop answers everything still waiting and lets the WAL drain.
func (s *Server) shutdownLoop(waiters map[core.RequestID]chan core.Response, sinks map[watch.StreamID]*watchSink) {
	for id, ch := range waiters { //detcd:maporder-ok: each waiter gets its own answer
		ch <- core.Response{ID: id, Err: core.ErrStopped}
	}
	for _, sink := range sinks { //detcd:maporder-ok: each stream ends on its own
		sink.end()
	}
	for _, p := range s.peers.byID { //detcd:maporder-ok: each sender stops on its own
		close(p.stop)
	}
	close(s.walq)
}

func (s *Server) writeCheckpoint(c *core.Checkpoint) {
	start := time.Now()
	size, err := s.disk.WriteCheckpoint(c)
	if err == nil {
		s.log.Info("checkpoint durable", "index", c.Index, "bytes", size, "took", time.Since(start).Round(time.Millisecond).String())
	}
	select {
	case s.ckptDone <- ckptResult{index: c.Index, size: size, err: err}:
	case <-s.stopping:
	}
}

// hashCompaction computes a compaction's hash off the loop.
func (s *Server) hashCompaction(j core.HashJob) {
	h := j.View.CompactionHash(mvcc.Revision(j.Rev))
	select {
	case s.hashes <- h:
	case <-s.stopping:
	}
}
