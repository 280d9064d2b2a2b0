package sim

import (
	"bytes"
	cryptorand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/core/wal/memfs"
	"github.com/detcd/detcd/core/watch"
	"github.com/detcd/detcd/disk"
	"github.com/detcd/detcd/driver"
	"github.com/detcd/detcd/grpcsvc"
	"github.com/detcd/detcd/server"
)

// member is one simulated member: a core.Node on a simulated disk with its
// own clock, driven by the world's events.
type member struct {
	w    *World
	idx  int
	id   uint64
	name string
	// flags are the member's server configuration, cfg core's from them
	// (memberconfig.go).
	flags server.Config
	cfg   core.Config
	fs    *memfs.FS
	node  *core.Node
	disk  *disk.Disk
	// d is the one driver, carrying out the node's Readys in virtual
	// time on this member's simulated disk (env.go).
	d *driver.Driver
	// snapIn is what the member takes of snapshots (snapresume.go).
	snapIn *snapIn
	// peerIn is the server's receive side of peer traffic (peerstream.go).
	peerIn *server.PeerReceiver
	// front and svc are the member's request path: etcd's services over
	// the driver, as the server has them (frontend.go); waits are the
	// tasks waiting on it; inst the server's metrics and health
	// (instruments.go).
	front *driver.Frontend
	inst  *instruments
	// healthyProbes counts the health probes the member answered healthy
	// after a linearizable read (healthprobe.go).
	healthyProbes int
	svc           *registry
	guard         *grpcsvc.Guard
	waits         map[uint64]*signal
	rng           *rand.Rand
	// jitter is raft's randomness, swapped in as crypto/rand.Reader around
	// every call into the node.
	jitter *rand.ChaCha8
	clock  clock

	up, paused bool
	// held says the member's loop is busy with a step that holds it
	// (driver.Step.HoldsLoop): events wait as while paused.
	held bool
	// inc counts incarnations: events scheduled for an earlier one are
	// dropped after a crash.
	inc int
	// slow multiplies disk latency while a slow-disk fault lasts.
	slow int64
	// failSync makes the next fsync fail.
	failSync bool
	// deferred are events that reached the member while it was paused.
	deferred    []func()
	workPending bool
	// streams are the watch streams open on this member.
	streams map[watch.StreamID]*watchClient
	// Membership: joining members start from an empty log with the
	// cluster's members as they were when they were added.
	joining, learner, removed bool
	initial                   []core.Member
	// durableLast is where the log ended at the last successful fsync
	// before a crash: the restart must come back with at least that much.
	durableLast uint64
	// broken names the damage a fault did to the member's data (walwipe,
	// rot, garbage), which its next start must (for garbage, may) refuse;
	// refused says it did, and the member stays down, as an operator would
	// leave it until it is removed and replaced.
	broken  Faults
	refused bool
	// garbage is where a garbage fault left garbage in the log;
	// garbageArmed, if positive, makes the disk's next turn crash the
	// member between its write and its fsync and leave garbage (see
	// garbageCrash), and is how long until the member restarts.
	garbage      []garbageSpan
	garbageArmed int64
	// segmentBytes is the size of the member's log segments; tests make
	// it small to have many.
	segmentBytes int64
	// kept says the liveness phase keeps this member crashed or cut off:
	// it stays as it is, and the others must converge and serve without it.
	kept bool
}

func newMember(w *World, idx int) *member {
	m := &member{
		w: w, idx: idx, id: uint64(idx + 1), name: fmt.Sprintf("m%d", idx+1),
		fs: memfs.New(), rng: w.child(), slow: 1, segmentBytes: 256 << 10,
		streams: map[watch.StreamID]*watchClient{},
	}
	// Torn writes keep whole sectors, as a disk writes them.
	m.fs.SectorBytes = wal.SectorBytes
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(m.rng.Uint32())
	}
	m.jitter = rand.NewChaCha8(seed)
	return m
}

// start opens the member's disk: a new member the first time, a restart
// after a crash.
func (m *member) start() error {
	m.inc++
	var err error
	if m.cfg, err = m.config(); err != nil {
		return err
	}
	m.with(func() {
		m.node, m.disk, err = disk.Open(m.fs, "data", m.cfg, disk.Options{SegmentBytes: m.segmentBytes})
	})
	if err != nil {
		return fmt.Errorf("%s: start: %w", m.name, err)
	}
	m.startInstruments()
	m.d, err = driver.New(driver.Config{Node: m.node, Disk: m.disk, Env: (*env)(m), Transport: (*transport)(m),
		Observer: observers{(*observer)(m), m.inst.Observer()}})
	if err != nil {
		return fmt.Errorf("%s: start: %w", m.name, err)
	}
	m.up, m.paused, m.held, m.deferred = true, false, false, nil
	m.snapIn = newSnapIn(m)
	m.startPeerReceiver()
	if err := m.startFrontend(); err != nil {
		return err
	}
	m.startHealthProbes()
	m.startCorruptChecks()
	m.clock.startTicker(m.w.now)
	m.scheduleTick()
	last := m.node.LastIndex()
	m.w.trace.logf(m.w.now, "%s start incarnation %d: applied %d rev %d term %d commit %d last %d", m.name, m.inc, m.node.AppliedIndex(), m.node.Rev(), m.node.Term(), m.node.Commit(), last)
	if last < m.durableLast {
		m.w.checks.fail("%s restarted with its log ending at index %d, but it had synced up to %d: it serves less than it acknowledged", m.name, last, m.durableLast)
	}
	m.durableLast = last
	m.w.checks.perm.sample(m)
	m.with(func() {})
	return nil
}

// serving is whether clients' calls reach m: as the server serves its
// client listeners only once the member has published its attributes,
// a member that is up but not yet published (a new member still taking
// its first snapshot) refuses them as a closed listener would.
func (m *member) serving() bool {
	return m.up && m.svc != nil && m.node != nil && m.node.Published()
}

// with calls into the node with this member's randomness in place of
// crypto/rand.Reader, then carries out whatever the node wants done.
func (m *member) with(f func()) {
	prev := cryptorand.Reader
	cryptorand.Reader = m.jitter
	defer func() {
		cryptorand.Reader = prev
		if r := recover(); r != nil {
			panic(memberPanic{id: m.id, value: r})
		}
	}()
	f()
	if m.node != nil && m.up {
		m.drain()
		m.peerIn.SyncMembers()
		m.front.Publish()
		m.inst.Publish(m.node)
		m.w.checks.checkMetrics(m)
	}
}

// memberPanic carries a panic out of a member's code to World.Run, which
// reports it as a failure of the run.
type memberPanic struct {
	id    uint64
	value any
}

// event wraps an event for this member: dropped if the member crashed
// since it was scheduled, held back while the member is paused.
func (m *member) event(fn func()) func() {
	inc := m.inc
	var run func()
	run = func() {
		switch {
		case m.inc != inc || !m.up:
		case m.paused || m.held:
			m.deferred = append(m.deferred, run)
		default:
			m.with(fn)
			m.w.checks.observe(m)
		}
	}
	return run
}

func (m *member) scheduleTick() {
	at := m.clock.scheduleNext(m.w.now, m.w.settings.TickUs)
	inc := m.inc
	m.w.schedule(at, func() {
		if m.inc != inc || !m.up {
			return
		}
		m.clock.ticked(m.w.now, m.w.settings.TickUs)
		if !m.paused && !m.held {
			m.with(m.d.Tick)
			m.w.checks.observe(m)
		}
		m.scheduleTick()
	})
}

// drain carries out Readys until the node has nothing more to do now.
func (m *member) drain() {
	if m.d.Process() {
		m.scheduleWork()
	}
}

func (m *member) scheduleWork() {
	if m.workPending {
		return
	}
	m.workPending = true
	m.w.after(1_000, m.event(func() {
		m.workPending = false
		m.d.StepBackground()
	}))
}

func (m *member) diskLatency() int64 {
	s := m.w.settings
	return (s.FsyncMinUs + m.rng.Int64N(s.FsyncMaxUs-s.FsyncMinUs+1)) * m.slow
}

// die is a process death: a failed fsync cannot be retried safely, so the
// member stops (and the fault schedule restarts it later).
func (m *member) die(why string) {
	m.w.trace.logf(m.w.now, "%s dies: %s", m.name, why)
	m.crash(false)
	m.w.after(m.w.between(200_000, 2_000_000), func() { m.w.restart(m) })
}

// crash loses everything the disk did not sync; torn keeps a random prefix
// of each file's unsynced bytes.
func (m *member) crash(torn bool) {
	tear := func(string, int) int { return 0 }
	if torn {
		tear = m.tornWrites(m.rng)
	}
	m.crashWith(tear)
}

// tornWrites is a crash's tear that keeps, drawn from rng, a prefix of the
// bytes each log segment was written since its last fsync: the zeros a
// preallocation left past them are no write's, so the tear never falls
// there (where it would keep the whole write). Other files keep a prefix
// of their unsynced bytes.
func (m *member) tornWrites(rng *rand.Rand) func(name string, unsynced int) int {
	sizes, ends := map[string]int{}, map[string]int{}
	if names, err := m.fs.List(walDir); err == nil {
		for _, n := range names {
			if b, err := m.fs.ReadFile(walDir + "/" + n); err == nil {
				sizes[walDir+"/"+n], ends[walDir+"/"+n] = len(b), len(bytes.TrimRight(b, "\x00"))
			}
		}
	}
	return func(name string, unsynced int) int {
		if unsynced == 0 {
			return 0
		}
		written := unsynced
		if size, ok := sizes[name]; ok {
			written = min(max(ends[name]-(size-unsynced), 0), unsynced)
		}
		keep := rng.IntN(written + 1)
		m.w.trace.logf(m.w.now, "%s tear %s keeps %d of %d unsynced bytes", m.name, name, keep, unsynced)
		return keep
	}
}

// crashWith is a crash in which tear says how many of each file's
// unsynced bytes survive.
func (m *member) crashWith(tear func(name string, unsynced int) int) {
	if !m.up {
		return
	}
	m.durableLast = m.d.Durable()
	m.closePeerStreams()
	m.peerIn = nil
	m.up, m.paused, m.held, m.node, m.disk, m.d, m.front, m.svc, m.guard, m.inst = false, false, false, nil, nil, nil, nil, nil, nil, nil
	m.inc++
	m.wakeWaits()
	m.deferred = nil
	// A dead process's watch streams break; their clients resume elsewhere.
	ids := make([]watch.StreamID, 0, len(m.streams))
	for id := range m.streams { //core:maporder-ok: sorted below
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if c := m.streams[id]; c.stream == id {
			c.broken() // else the client moved on to another stream
		}
	}
	m.streams = map[watch.StreamID]*watchClient{}
	m.workPending = false
	m.fs.Crash(tear)
	m.w.trace.logf(m.w.now, "%s crash", m.name)
}

// closePeerStreams: a dead process's peer streams close, and each peer
// that its FIN reaches sees its stream to it break, as the server's
// transport reports it (ReportPeerLost): its run of contact ends at once;
// the dead member's stream to it ends there (closeLinks).
func (m *member) closePeerStreams() {
	w := m.w
	epoch := w.epoch
	for _, p := range w.members {
		if p == m || !p.up {
			continue
		}
		times := w.net.Send(m.id, p.id, w.now)
		if len(times) == 0 {
			continue // lost or cut: the peer finds out by silence
		}
		w.schedule(times[0], func() { w.closeLinks(m, p) })
		w.schedule(times[0], p.event(func() {
			if !w.sameEpoch(epoch) {
				return
			}
			w.trace.logf(w.now, "%s lost its stream to %s", p.name, m.name)
			p.d.ReportPeerLost(m.id)
		}))
	}
}

func (m *member) pause() {
	m.paused = true
	m.w.trace.logf(m.w.now, "%s pause", m.name)
}

func (m *member) resume() {
	if !m.up || !m.paused {
		return
	}
	m.paused = false
	m.w.trace.logf(m.w.now, "%s resume (%d deferred events)", m.name, len(m.deferred))
	m.runDeferred()
}

// runDeferred runs the events that waited while the member was paused or
// held; those that still cannot run wait again.
func (m *member) runDeferred() {
	d := m.deferred
	m.deferred = nil
	for _, fn := range d {
		fn()
	}
}

// describe formats a raft message for the trace, as
// "%s t%d i%d lt%d c%d" of its type, term, index, log term and commit,
// then " ents%d" and " reject" where they apply; without fmt, as it
// runs for every message.
func describe(msg *raftpb.Message) string {
	b := make([]byte, 0, 64)
	t := msg.GetType()
	if name, ok := raftpb.MessageType_name[int32(t)]; ok {
		b = append(b, name...)
	} else {
		b = append(b, t.String()...)
	}
	b = appendField(b, " t", msg.GetTerm())
	b = appendField(b, " i", msg.GetIndex())
	b = appendField(b, " lt", msg.GetLogTerm())
	b = appendField(b, " c", msg.GetCommit())
	if n := len(msg.GetEntries()); n > 0 {
		b = appendField(b, " ents", uint64(n))
	}
	if msg.GetReject() {
		b = append(b, " reject"...)
	}
	return string(b)
}

func appendField(b []byte, name string, v uint64) []byte {
	return strconv.AppendUint(append(b, name...), v, 10)
}
