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
	if s.api == nil || s.Frontend.Leader() != s.status.id {
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
	s.log.Info("leadership transferred before stopping", "leader", s.Frontend.Leader())
}
