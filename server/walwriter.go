package server

import (
	"fmt"
	"time"

	"github.com/detcd/detcd/core"
)

type walOp struct {
	persist *core.Persist
	release *core.Release
}

// runWAL carries out log writes in order. Every write waiting when it
// starts a turn goes into one fsync: the group commit that lets many
// proposals share the cost of one.
func (s *Server) runWAL() {
	defer close(s.walDone)
	failed := false
	for op := range s.walq {
		if failed {
			continue
		}
		batch := []walOp{op}
	gather:
		for len(batch) < walQueueMax {
			select {
			case o, ok := <-s.walq:
				if !ok {
					break gather
				}
				batch = append(batch, o)
			default:
				break gather
			}
		}
		if err := s.writeBatch(batch); err != nil {
			failed = true
			s.die(err)
		}
	}
	if !failed {
		if err := s.disk.Flush(); err != nil {
			s.die(fmt.Errorf("final log sync: %w", err))
		}
	}
}

func (s *Server) writeBatch(batch []walOp) error {
	var last uint64
	sync := false
	var bytes int
	for _, op := range batch {
		if p := op.persist; p != nil {
			start := time.Now()
			if err := s.disk.Write(p); err != nil {
				return fmt.Errorf("log write: %w", err)
			}
			s.metrics.walWrite.Observe(time.Since(start).Seconds())
			last, sync = p.ID, sync || p.Sync
			for _, e := range p.Entries {
				bytes += len(e.Data)
			}
		}
		if r := op.release; r != nil {
			if err := s.disk.Release(r); err != nil {
				s.log.Warn("releasing old log files", "err", err)
			}
		}
	}
	if sync {
		start := time.Now()
		if err := s.disk.Flush(); err != nil {
			return fmt.Errorf("log fsync: %w", err)
		}
		s.metrics.fsync.Observe(time.Since(start).Seconds())
	}
	s.metrics.walBytes.Add(float64(bytes))
	if last != 0 {
		select {
		case s.persisted <- last:
		case <-s.stopping:
		}
	}
	return nil
}
