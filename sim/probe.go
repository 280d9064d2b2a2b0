package sim

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
)

// probeKey is outside the workload's keys ("g.."), so the probe's write
// leaves the checkers' view of the history alone.
const probeKey = "liveness/probe"

// probe checks, in a liveness phase that keeps a faulty minority, that the
// rest serves: a write, then a linearizable read that sees it, each retried
// on another serving member until it succeeds.
type probe struct {
	w     *World
	value string
	// wrote says the write succeeded; ok that the read saw it.
	wrote, ok bool
	// attempt numbers requests, so a timeout retries only its own.
	attempt  int
	lastErr  string
	attempts int
}

// startProbe starts the probe in runs that keep a faulty minority; it
// returns nil otherwise, which is done at once.
func (w *World) startProbe() *probe {
	kept := false
	for _, m := range w.members {
		kept = kept || m.kept
	}
	if !kept {
		return nil
	}
	p := &probe{w: w, value: fmt.Sprintf("seed-%d", w.opts.Seed)}
	p.next()
	return p
}

func (p *probe) done() bool { return p == nil || p.ok }

func (p *probe) report() string {
	if p.done() {
		return ""
	}
	return fmt.Sprintf("; the majority did not serve a write and a linearizable read (wrote %v after %d attempts, last error: %s)", p.wrote, p.attempts, p.lastErr)
}

// next sends the probe's next request to a serving member that is up.
func (p *probe) next() {
	w := p.w
	var up []*member
	for _, m := range w.serving() {
		if m.up {
			up = append(up, m)
		}
	}
	p.attempt++
	p.attempts++
	attempt := p.attempt
	retry := func(why string) {
		if p.attempt == attempt && !p.ok {
			p.lastErr = why
			p.attempt++
			w.after(100_000, p.next)
		}
	}
	if len(up) == 0 {
		retry("no serving member is up")
		return
	}
	m := up[w.faults.rng.IntN(len(up))]
	req := core.Request{Put: &pb.PutRequest{Key: []byte(probeKey), Value: []byte(p.value)}}
	if p.wrote {
		req = core.Request{Range: &pb.RangeRequest{Key: []byte(probeKey)}}
	}
	w.after(w.settings.ClientTimeoutUs, func() { retry("timeout") })
	m.event(func() {
		w.callAs(m, w.rootLogin, req, func(r core.Response) {
			if p.attempt != attempt {
				return
			}
			if r.Err != nil {
				retry(r.Err.Error())
				return
			}
			p.answer(m, r)
		})
	})()
}

func (p *probe) answer(m *member, r core.Response) {
	w := p.w
	if !p.wrote {
		p.wrote = true
		w.trace.logf(w.now, "liveness probe: %s wrote %s", m.name, probeKey)
		p.attempt++
		p.next()
		return
	}
	rr, _ := r.Msg.(*pb.RangeResponse)
	if rr == nil || len(rr.Kvs) != 1 || string(rr.Kvs[0].Value) != p.value {
		w.checks.fail("liveness probe: a linearizable read on %s after the write was acknowledged did not see it: %v", m.name, r.Msg)
	}
	p.ok = true
	w.trace.logf(w.now, "liveness probe: %s read it back", m.name)
}
