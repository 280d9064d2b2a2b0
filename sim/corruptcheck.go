package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"time"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/corrupt"
	"github.com/detcd/detcd/driver"
	"github.com/detcd/detcd/server"
)

// The corruption checks (package corrupt) on the simulated members, the
// rounds the server runs: a restarting member's initial check, the
// leader's periodic and compaction hash checks, each as a task in virtual
// time, when the run's settings turn them on (the server's
// InitialCorruptCheck and CompactHashCheck gates, --corrupt-check-time,
// --compact-hash-check-time). A member asks its peers for their hashes
// over the simulated network, with the server's request, and a peer
// answers with the server's handler of etcd's /members/hashkv
// (corrupt.LocalHash on its loop); the asking member reads the answer
// as the server does, etcd's errors included.

// drawCorruptChecks turns each corruption check on for half the seeds,
// or all of them on or off as the option pins it. It draws last, so the
// settings drawn before stay as they were.
func (s *Settings) drawCorruptChecks(r *rand.Rand, pinned string) {
	on := [3]bool{r.IntN(2) == 0, r.IntN(2) == 0, r.IntN(2) == 0}
	every, compactEvery := 1_000_000*(1+r.Int64N(10)), 1_000_000*(1+r.Int64N(10))
	if pinned != "" {
		on = [3]bool{pinned == "on", pinned == "on", pinned == "on"}
	}
	s.InitialCorruptCheck = on[0]
	if on[1] {
		s.CorruptCheckUs = every
	}
	if on[2] {
		s.CompactHashCheckUs = compactEvery
	}
}

// corruptChecksString prints the corruption checks that are on; nothing
// when none is, as before they existed.
func (s Settings) corruptChecksString() string {
	if !s.InitialCorruptCheck && s.CorruptCheckUs == 0 && s.CompactHashCheckUs == 0 {
		return ""
	}
	return fmt.Sprintf("; corrupt checks: initial %v, periodic every %dus, compaction hash every %dus (0: off)",
		s.InitialCorruptCheck, s.CorruptCheckUs, s.CompactHashCheckUs)
}

// errPeerTimeout is a hash request that got no answer in time.
var errPeerTimeout = errors.New("sim: hash request timed out")

// corruptRuntime is one incarnation of a member as a corrupt.Runtime.
type corruptRuntime struct {
	m   *member
	inc int
}

// WithTimeout implements corrupt.Runtime: a wait ends with the member's
// incarnation, never on the wall clock; peer requests time out in
// virtual time (ask).
func (r *corruptRuntime) WithTimeout(time.Duration) (context.Context, context.CancelFunc) {
	return context.Background(), func() {}
}

// OnLoop implements corrupt.Runtime: fn runs as the member's event, as
// the server's loopCaller posts it to the loop.
func (r *corruptRuntime) OnLoop(ctx context.Context, fn func(*core.Node)) error {
	return driver.Await(ctx, &taskRuntime{m: r.m, inc: r.inc}, func(done func()) { fn(r.m.node); done() })
}

// PeerHashes implements corrupt.Runtime: every other member the node
// knows, in order of id, one at a time, as the server asks them.
func (r *corruptRuntime) PeerHashes(rev int64) []corrupt.PeerHash {
	var ms []core.Member
	if r.OnLoop(context.Background(), func(n *core.Node) { ms = n.Members() }) != nil {
		return nil
	}
	slices.SortFunc(ms, func(a, b core.Member) int { return cmp.Compare(a.ID, b.ID) })
	var out []corrupt.PeerHash
	for _, p := range ms {
		if p.ID == r.m.id || len(p.PeerURLs) == 0 {
			continue
		}
		reply, err := r.ask(p.ID, rev)
		out = append(out, corrupt.PeerHash{ID: p.ID, Reply: reply, Err: err})
	}
	return out
}

// ask sends a hash request at rev to member to over the network and
// parks the running task until the answer comes back or the request
// times out (a client timeout, in virtual time).
func (r *corruptRuntime) ask(to uint64, rev int64) (*corrupt.Reply, error) {
	w, t := r.m.w, r.m.w.curTask
	var reply *corrupt.Reply
	var err error
	done := false
	finish := func(rp *corrupt.Reply, e error) {
		if !done {
			done, reply, err = true, rp, e
			w.schedule(w.now, t.resume)
		}
	}
	w.after(w.settings.ClientTimeoutUs, func() { finish(nil, errPeerTimeout) })
	if int(to) <= len(w.members) {
		// The request the server sends, to the peer's URL.
		req, rerr := server.NewHashKVRequest(context.Background(), peerURL(w.members[to-1].name), r.m.cfg.ClusterID, rev)
		if rerr != nil {
			return nil, rerr
		}
		w.carry(r.m.id, to, func() { w.answerHash(to, r.m.id, req, finish) })
	}
	t.park()
	return reply, err
}

// carry runs fn when a message from one member reaches another, if the
// network delivers it: once, as over a stream.
func (w *World) carry(from, to uint64, fn func()) {
	if to == 0 || int(to) > len(w.members) {
		return
	}
	times := w.net.Send(from, to, w.now)
	if len(times) == 0 {
		return
	}
	epoch := w.epoch
	w.schedule(times[0], func() {
		if w.net.Connected(from, to) && w.sameEpoch(epoch) {
			fn()
		}
	})
}

// answerHash is a peer's hash endpoint: member id answers from's request
// with the server's peer handler (corrupt.LocalHash on its loop, as
// startPeerReceiver sets it), in a task, and sends the answer back,
// which the asking member reads as the server does. A member that died
// meanwhile does not answer.
func (w *World) answerHash(id, from uint64, req *http.Request, finish func(*corrupt.Reply, error)) {
	m := w.members[id-1]
	if !m.up || m.svc == nil {
		return
	}
	inc, h := m.inc, m.peerIn.Handler()
	w.spawn(func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if m.inc != inc || !m.up {
			return // the process died: no answer
		}
		resp := rec.Result()
		w.carry(id, from, func() {
			reply, err := server.ReadHashKVAnswer(resp)
			if err != nil {
				finish(nil, err)
				return
			}
			finish(&reply, nil)
		})
	})
}

// startCorruptChecks starts the checks the settings turn on for this
// incarnation, as the server's Start does: a restarting member's initial
// check first (a member that fails it stops and stays down), then the
// periodic and compaction hash checks' timers.
func (m *member) startCorruptChecks() {
	s := m.w.settings
	restarted := m.inc > 1
	initial := s.InitialCorruptCheck && restarted
	if !initial && s.CorruptCheckUs == 0 && s.CompactHashCheckUs == 0 {
		return
	}
	rt := &corruptRuntime{m: m, inc: m.inc}
	ck := &corrupt.Checker{Log: m.corruptLog(), ID: m.id, Timeout: time.Duration(s.ClientTimeoutUs) * time.Microsecond,
		Runtime: rt, Requests: m.front, PlantedBug: m.w.opts.PlantedBug}
	m.spawnNow(rt.inc, func() {
		if initial && !m.initialCheck(rt.inc, ck) {
			return
		}
		if s.CompactHashCheckUs > 0 {
			m.spawnNow(rt.inc, func() { m.monitorCompactHash(rt.inc, ck) })
		}
		if s.CorruptCheckUs > 0 {
			m.monitorKVHash(rt.inc, ck)
		}
	})
}

// spawnNow starts fn as a task at the current time, after the event
// running now, if incarnation inc is still up.
func (m *member) spawnNow(inc int, fn func()) {
	m.w.schedule(m.w.now, func() {
		if m.inc == inc && m.up {
			m.w.spawn(fn)
		}
	})
}

// initialCheck runs the initial check; a member whose data differs from
// a peer's refuses to start, as the server's Start does, and stays down.
func (m *member) initialCheck(inc int, ck *corrupt.Checker) bool {
	err := ck.Initial()
	if err == nil {
		return true
	}
	if !errors.Is(err, corrupt.ErrDataInconsistency) || !m.up || m.inc != inc {
		return false
	}
	m.w.checks.corruptRefused(m, err)
	m.refused = true
	m.crash(false)
	return false
}

// monitorKVHash runs the periodic check every CorruptCheckUs while this
// incarnation leads.
func (m *member) monitorKVHash(inc int, ck *corrupt.Checker) {
	for m.checking(inc, m.w.settings.CorruptCheckUs) {
		if err := ck.Periodic(); err != nil {
			ck.Log.Warn("failed to check hash KV", "err", err)
		}
	}
}

// monitorCompactHash runs the compaction hash check every
// CompactHashCheckUs while this incarnation leads.
func (m *member) monitorCompactHash(inc int, ck *corrupt.Checker) {
	var checked int64
	for m.checking(inc, m.w.settings.CompactHashCheckUs) {
		checked = ck.CompactHash(checked)
	}
}

// checking sleeps for everyUs and reports whether incarnation inc should
// run a check round now: it is up, not paused, and leads. It loops until
// the incarnation ends.
func (m *member) checking(inc int, everyUs int64) bool {
	for {
		m.w.sleep(everyUs)
		switch {
		case m.inc != inc || !m.up || m.removed:
			return false
		case !m.paused && m.front.Leader() == m.id:
			return true
		}
	}
}

// corruptLog writes the checks' log lines to the trace.
func (m *member) corruptLog() *slog.Logger { return m.traceLog("corrupt check") }

// traceLog writes the log lines of the server's code that runs on the
// member to the trace, after what names it.
func (m *member) traceLog(what string) *slog.Logger {
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	return slog.New(slog.NewTextHandler(traceWriter{m, what}, &slog.HandlerOptions{ReplaceAttr: noTime}))
}

// traceWriter writes a member's log lines to the trace.
type traceWriter struct {
	m    *member
	what string
}

func (t traceWriter) Write(b []byte) (int, error) {
	t.m.w.trace.logf(t.m.w.now, "%s %s: %s", t.m.name, t.what, strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}
