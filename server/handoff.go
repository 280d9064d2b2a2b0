package server

import (
	"context"

	"github.com/detcd/detcd/core"
)

// handOff moves the leadership of a leader that is stopping to the voter
// that can take it soonest, as etcd's Stop does: the cluster has a leader
// again within a few round trips instead of an election timeout of
// silence, and its term rises once. It waits at most two election
// timeouts (a transfer takes a few round trips), so a stop never hangs
// on a cluster that cannot elect.
func (s *Server) handOff() {
	if s.api == nil {
		return
	}
	self, lead := hexID(s.status.id), hexID(s.Frontend.Leader())
	if s.Frontend.Leader() != s.status.id {
		s.log.Info("skipped leadership transfer; local server is not leader", "local-member-id", self, "current-leader-member-id", lead)
		return
	}
	if voters(s.peers.memberList()) < 2 {
		s.log.Info("skipped leadership transfer for single voting member cluster", "local-member-id", self, "current-leader-member-id", lead)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*s.cfg.ElectionTimeout)
	defer cancel()
	resp, err := s.Frontend.Do(ctx, core.Request{HandOff: true})
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		s.log.Warn("leadership transfer before stopping failed", "error", err)
		return
	}
	if s.Frontend.Leader() == s.status.id {
		// No other voter was in contact: etcd refuses the transfer as
		// "unhealthy cluster" and stops anyway.
		s.log.Warn("leadership transfer before stopping failed", "error", "no other voter in contact")
		return
	}
	s.log.Info("leadership transferred before stopping", "leader", hexID(s.Frontend.Leader()))
}

// voters counts the voting members of ms.
func voters(ms []core.Member) int {
	n := 0
	for _, m := range ms {
		if !m.IsLearner {
			n++
		}
	}
	return n
}
