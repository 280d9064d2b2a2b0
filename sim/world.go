package sim

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/watch"
	"github.com/detcd/detcd/netsim"
	"github.com/detcd/detcd/server"
	"github.com/detcd/detcd/server/wire"
)

// World is one simulated cluster with its clients. It is single-threaded
// and deterministic: everything comes from Options.Seed.
type World struct {
	opts     Options
	settings Settings
	root     *rand.Rand
	rng      *rand.Rand
	now      int64
	seq      uint64
	queue    eventQueue

	net      *netsim.Network
	members  []*member
	clients  []*client
	watchers []*watchClient
	leasers  []*leaseClient
	admins   []*authClient
	// operators call the Maintenance service (maintclient.go).
	operators []*operator
	// lockers call the Lock and Election services (lockclient.go).
	lockers []*lockClient
	// nextStream names watch streams across the world.
	nextStream watch.StreamID
	// Request handlers running as tasks (task.go): the one running, all
	// alive, and the randomness they see as crypto/rand.Reader.
	curTask *task
	// authOn: the workload runs with auth on (authon.go); rootLogin is
	// the operator's session, for membership changes and the probe.
	authOn    bool
	rootLogin *login
	// perm, with auth on, draws the users of limited permissions
	// (permusers.go).
	perm  *permWorld
	tasks map[uint64]*task
	// links are the members' streams to each other (peerstream.go).
	links                map[linkKey]*peerLink
	nextTask, nextSignal uint64
	taskRand             io.Reader
	trace                *tracer
	checks               *checkers
	faults               faultState
	stats                Stats
	// injected is every fault injected so far, as a schedule that
	// replays them (Result.Injected); timeline, if not nil, records the
	// run for WriteTimelineHTML.
	injected []ScheduledFault
	timeline *timeline
	// stopping is set in the liveness phase: clients finish what they
	// have in flight and start nothing new.
	stopping bool
	// epoch counts the restores of the whole cluster (restore.go);
	// backup is the operators' newest backup, restoreRng the restores'
	// own randomness.
	epoch      int
	backup     *heldBackup
	restoreRng *rand.Rand
	// OnProgress, if set, is called now and then during the safety phase
	// with the virtual time and the phase's end, for progress lines. It
	// must not touch the world.
	OnProgress func(nowUs, endUs int64)
}

// Stats count what happened in a run.
type Stats struct {
	Ops, OpsOK, OpsUnknown, OpsFailed int
	Messages, Dropped                 int64
	Faults                            map[string]int
	// Refused counts starts refused, as they must be, after a fault
	// destroyed a member's data.
	Refused     int
	SimulatedUs int64
	Events      uint64
}

// New builds a world from options. trace, if not nil, receives the trace.
func New(opts Options, trace io.Writer) (*World, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	w := &World{opts: opts, root: rand.New(rand.NewPCG(opts.Seed, 0x5eed)), trace: newTracer(trace), restoreRng: newRestoreRand(opts.Seed)}
	w.rng = w.child()
	opts = opts.drawShape(w.child())
	w.opts = opts
	w.settings = drawSettings(w.child(), opts)
	w.stats.Faults = map[string]int{}
	w.checks = newCheckers(w)
	ids := make([]netsim.NodeID, opts.Members)
	for i := range ids {
		ids[i] = netsim.NodeID(i + 1)
	}
	var err error
	if w.net, err = netsim.New(w.settings.Net, w.child(), ids); err != nil {
		return nil, err
	}
	for i := 0; i < opts.Members; i++ {
		w.members = append(w.members, newMember(w, i))
	}
	for i := 0; i < opts.Clients; i++ {
		w.clients = append(w.clients, newClient(w, i))
	}
	for i := 0; i < opts.Watchers; i++ {
		w.watchers = append(w.watchers, newWatchClient(w, i))
	}
	for i := 0; i < opts.LeaseClients; i++ {
		w.leasers = append(w.leasers, newLeaseClient(w, i))
	}
	for i := 0; i < opts.AuthClients; i++ {
		w.admins = append(w.admins, newAuthClient(w, i))
	}
	w.faults.init(w)
	var seed [32]byte
	tr := w.child()
	for i := range seed {
		seed[i] = byte(tr.Uint32())
	}
	w.taskRand, w.tasks = rand.NewChaCha8(seed), map[uint64]*task{}
	w.authOn, w.rootLogin = opts.authEnabled(), newLogin(rootUser)
	if w.authOn {
		w.perm = newPermWorld(w)
	}
	// Last, so that the components above draw as they did before.
	for i := 0; i < opts.Operators; i++ {
		w.operators = append(w.operators, newOperator(w, i))
	}
	for i := 0; i < opts.LockClients; i++ {
		w.lockers = append(w.lockers, newLockClient(w, i))
	}
	return w, nil
}

// child derives a component's PRNG from the root, so components draw
// independently: adding a draw in one does not shift the others.
func (w *World) child() *rand.Rand {
	return rand.New(rand.NewPCG(w.root.Uint64(), w.root.Uint64()))
}

func (w *World) between(lo, hi int64) int64 { return lo + w.rng.Int64N(hi-lo+1) }

// Options are the run's options, with the world shape the seed drew
// filled in.
func (w *World) Options() Options { return w.opts }

// Settings are the run's randomized parameters.
func (w *World) Settings() Settings { return w.settings }

// Result is the outcome of a run.
type Result struct {
	Options   Options
	Settings  Settings
	Stats     Stats
	Failures  []string
	TraceHash string
	Wall      time.Duration
	// Linearizability is porcupine's verdict: ok, illegal or unknown.
	Linearizability string
	// Injected is the faults the run injected, as a schedule (for --at)
	// that shrinking cuts down.
	Injected []ScheduledFault `json:",omitempty"`
}

// OK reports whether every checker passed.
func (r *Result) OK() bool { return len(r.Failures) == 0 }

// Run runs the safety phase, then the liveness phase, then the checkers.
// A member that panics (raft's own assertions, say, on a log that lost
// acknowledged entries) ends the run with a failure naming it.
func (w *World) Run() (res *Result) {
	start := time.Now()
	defer w.stopTasks()
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		mp, ok := r.(memberPanic)
		if !ok {
			panic(r)
		}
		w.checks.fail("m%d panicked: %v", mp.id, mp.value)
		res = w.result(start)
	}()
	w.trace.logf(0, "options %s", w.opts)
	w.trace.logf(0, "settings %s", w.settings)
	for _, m := range w.members {
		if err := m.start(); err != nil {
			w.checks.fail("%v", err)
			return w.result(start)
		}
	}
	if w.authOn {
		w.authSetup(w.startWorkload)
	} else {
		w.startWorkload()
	}
	w.faults.start()
	w.scheduleRestores()
	w.checks.scheduleHistoryScans()
	safetyEnd := w.opts.Duration.Microseconds()
	for w.step(safetyEnd) {
		w.stats.Events++
		if w.OnProgress != nil && w.stats.Events%(1<<16) == 0 {
			w.OnProgress(w.now, safetyEnd)
		}
	}
	w.now = max(w.now, safetyEnd)
	w.liveness()
	for _, c := range w.clients {
		c.abandon()
	}
	w.checks.final()
	return w.result(start)
}

// startWorkload starts every client.
func (w *World) startWorkload() {
	for _, c := range w.clients {
		c.start()
	}
	for _, c := range w.watchers {
		c.startWatching()
	}
	for _, c := range w.leasers {
		c.start()
	}
	for _, c := range w.admins {
		c.start()
	}
	for _, o := range w.operators {
		o.start()
	}
	for _, c := range w.lockers {
		c.start()
	}
}

func (w *World) result(start time.Time) *Result {
	w.stats.SimulatedUs = w.now
	return &Result{Options: w.opts, Settings: w.settings, Stats: w.stats, Failures: w.checks.failures,
		TraceHash: w.trace.sum(), Wall: time.Since(start), Linearizability: w.checks.Linearizability,
		Injected: w.injected}
}

// liveness stops the faults and the workload, heals everything (but a
// faulty minority, in runs that keep one) and requires every other member
// to converge, and, with a minority kept, to serve a write and a
// linearizable read, within the bound.
func (w *World) liveness() {
	w.trace.logf(w.now, "liveness phase: heal")
	w.note(clusterColumn, rowPhase, "liveness phase: faults stop, the network heals")
	w.stopping = true
	w.faults.keepMinority()
	w.faults.healAll()
	p := w.startProbe()
	f := w.startFinalRecovery()
	deadline := w.now + w.opts.Liveness.Microseconds()
	checkEvery := int64(200_000)
	next := w.now + checkEvery
	for w.now < deadline {
		if !w.step(next) {
			w.now = next
		}
		w.stats.Events++
		if w.now >= next {
			if p.done() && f.isDone() && w.checks.converged() {
				w.trace.logf(w.now, "converged")
				w.note(clusterColumn, rowPhase, "converged")
				return
			}
			next = w.now + checkEvery
		}
	}
	w.checks.fail("liveness: members did not converge within %v: %s%s", w.opts.Liveness, w.checks.convergenceReport(), p.report()+f.report())
}

// restart brings a crashed member back. A member whose data a fault
// destroyed must refuse to start, and then stays down.
func (w *World) restart(m *member) {
	if m.up || m.removed || m.refused || m.kept {
		return
	}
	err := m.start()
	switch {
	case m.broken == 0 && err != nil:
		// A failure: the member stays down, so that the checkers that
		// follow look only at members that run.
		m.refused = true
		w.checks.fail("%v", err)
	case m.broken == 0:
		w.note(m.idx, rowMember, m.name+" restarts")
	case err == nil && m.broken == FaultGarbage:
		m.broken = 0 // recovery cut the torn tail; start checked it kept what was synced
		w.note(m.idx, rowMember, m.name+" restarts")
	case err == nil:
		w.checks.fail("%s started on a data directory damaged by %s: it must refuse to start", m.name, m.broken)
	case errors.Is(err, m.broken.refusal()) && m.damageExplains(err):
		m.refused = true
		w.stats.Refused++
		w.trace.logf(w.now, "%s refuses to start: %v", m.name, err)
		w.note(m.idx, rowMember, m.name+" refuses to start: "+err.Error())
	default:
		w.checks.fail("%s refused to start after %s with the wrong error: %v", m.name, m.broken, err)
	}
}

// serving are the members that are not removed, did not refuse to start
// and are not kept faulty: the ones the checkers expect to converge.
func (w *World) serving() []*member {
	var out []*member
	for _, m := range w.live() {
		if !m.refused && !m.kept {
			out = append(out, m)
		}
	}
	return out
}

// send puts a raft message on the network.
func (w *World) send(from *member, rm *raftpb.Message) {
	to := rm.GetTo()
	w.stats.Messages++
	times := w.net.Send(from.id, to, w.now)
	if len(times) > 1 && rm.GetType() == raftpb.MsgProp {
		// A forwarded proposal arrives at most once, as over the TCP
		// stream the real transport uses: raft cannot tell a duplicated
		// proposal from a new one and would apply it twice.
		times = times[:1]
	}
	if len(times) == 0 {
		w.stats.Dropped++
		d := describe(rm)
		w.trace.log(w.now, from.name, ">m", strconv.FormatUint(to, 10), " drop ", d)
		w.noteDrop(from, to, d)
		return
	}
	if to == 0 || int(to) > len(w.members) {
		return
	}
	sent, inc, target := w.now, from.inc, w.members[to-1]
	// The message travels as the server's transport sends it, on the
	// sender's stream to the target (peerstream.go): every copy delivered
	// is decoded from the wire by the server's handler, never the
	// sender's own.
	b, err := wire.EncodeRaft(rm)
	if err != nil {
		w.checks.fail("%s: a raft message does not encode: %v", from.name, err)
		return
	}
	frame, d := server.AppendPeerFrame(nil, b), describe(rm)
	epoch := w.epoch
	for _, at := range times {
		w.schedule(at, func() {
			if !w.net.Connected(from.id, to) || !w.sameEpoch(epoch) || !w.deliverFrame(from, inc, target, frame) {
				w.stats.Dropped++
				return
			}
			w.trace.log(w.now, from.name, ">", target.name, " ", d)
			w.noteMessage(from, target, sent, d)
		})
	}
}

// sendPeer carries a member-to-member message outside raft.
func (w *World) sendPeer(from *member, pm *core.PeerMessage) {
	to := pm.To
	if to == 0 || int(to) > len(w.members) {
		return
	}
	times := w.net.Send(from.id, to, w.now)
	if len(times) == 0 {
		w.trace.logf(w.now, "%s>m%d drop peer message %d", from.name, to, pm.Seq)
		return
	}
	// Every copy arrives: a duplicated forward must be carried out once.
	target := w.members[to-1]
	b, err := wire.EncodePeer(pm)
	if err != nil {
		w.checks.fail("%s: a peer message does not encode: %v", from.name, err)
		return
	}
	frame, seq, inc := server.AppendPeerFrame(nil, b), pm.Seq, from.inc
	epoch := w.epoch
	for _, at := range times {
		w.schedule(at, func() {
			if w.net.Connected(from.id, to) && w.sameEpoch(epoch) && w.deliverFrame(from, inc, target, frame) {
				w.trace.logf(w.now, "%s>%s peer message %d", from.name, target.name, seq)
			}
		})
	}
}

// Trace hash so far.
func (w *World) TraceHash() string { return w.trace.sum() }

func (w *World) String() string {
	return fmt.Sprintf("world seed %d at %dus", w.opts.Seed, w.now)
}
