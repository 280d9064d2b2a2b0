package sim

import (
	"bytes"
	cryptorand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"slices"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/core/wal/memfs"
	"github.com/detcd/detcd/core/watch"
	"github.com/detcd/detcd/disk"
)

// member is one simulated member: a core.Node on a simulated disk with its
// own clock, driven by the world's events.
type member struct {
	w    *World
	idx  int
	id   uint64
	name string
	cfg  core.Config
	fs   *memfs.FS
	node *core.Node
	disk *disk.Disk
	rng  *rand.Rand
	// jitter is raft's randomness, swapped in as crypto/rand.Reader around
	// every call into the node.
	jitter *rand.ChaCha8
	clock  clock

	up, paused bool
	// inc counts incarnations: events scheduled for an earlier one are
	// dropped after a crash.
	inc int
	// walq are log writes waiting for the disk's next turn; walBusy is
	// set while a turn is under way.
	walq    []walWrite
	walBusy bool
	// slow multiplies disk latency while a slow-disk fault lasts.
	slow int64
	// failSync makes the next fsync fail.
	failSync bool
	// deferred are events that reached the member while it was paused.
	deferred    []func()
	workPending bool
	nextReq     core.RequestID
	waiting     map[core.RequestID]func(core.Response)
	// streams are the watch streams open on this member.
	streams map[watch.StreamID]*watchClient
	// Membership: joining members start from an empty log with the
	// cluster's members as they were when they were added.
	joining, learner, removed bool
	initial                   []core.Member
	// writtenLast is where the log ends after the writes handed to the
	// disk, durableLast where it ended at the last successful fsync: a
	// restart must come back with at least that much.
	writtenLast, durableLast uint64
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
		fs: memfs.New(), rng: w.child(), slow: 1, segmentBytes: 256 << 10, waiting: map[core.RequestID]func(core.Response){},
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

func (m *member) config() core.Config {
	s := m.w.settings
	ms := m.initial
	if ms == nil {
		for i := 0; i < m.w.opts.Members; i++ {
			ms = append(ms, core.Member{ID: uint64(i + 1), Name: fmt.Sprintf("m%d", i+1), PeerURLs: []string{fmt.Sprintf("http://m%d:2380", i+1)}})
		}
	} else {
		ms = append([]core.Member(nil), ms...)
		for i := range ms {
			if ms[i].ID == m.id {
				ms[i].Name = m.name
			}
		}
	}
	return core.Config{
		ID: m.id, ClusterID: 0xdeca, Members: ms, Join: m.joining,
		ElectionTicks: s.ElectionTicks, HeartbeatTicks: 1, RequestTimeoutTicks: 50,
		SnapshotCount: s.SnapshotCount, SnapshotCatchUpEntries: s.CatchUp,
		CheckpointMinBytes: s.CheckpointMinBytes,
		ProposalEpoch:      m.rng.Uint64() &^ (1<<32 - 1),
		ClusterVersion:     "3.7.0",
		PlantedBug:         m.w.opts.PlantedBug,
		OnApply:            func(index, term uint64, data []byte) { m.w.checks.applied(m, index, term, data) },
	}
}

// start opens the member's disk: a new member the first time, a restart
// after a crash.
func (m *member) start() error {
	m.inc++
	m.cfg = m.config()
	var err error
	m.with(func() {
		m.node, m.disk, err = disk.Open(m.fs, "data", m.cfg, disk.Options{SegmentBytes: m.segmentBytes})
	})
	if err != nil {
		return fmt.Errorf("%s: start: %w", m.name, err)
	}
	m.up, m.paused, m.walq, m.walBusy, m.deferred = true, false, nil, false, nil
	m.scheduleTick()
	last := m.node.LastIndex()
	m.w.trace.logf(m.w.now, "%s start incarnation %d: applied %d rev %d term %d commit %d last %d", m.name, m.inc, m.node.AppliedIndex(), m.node.Rev(), m.node.Term(), m.node.Commit(), last)
	if last < m.durableLast {
		m.w.checks.fail("%s restarted with its log ending at index %d, but it had synced up to %d: it serves less than it acknowledged", m.name, last, m.durableLast)
	}
	m.writtenLast, m.durableLast = last, last
	m.with(func() {})
	return nil
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
		case m.paused:
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
		if !m.paused {
			m.with(m.node.Tick)
			m.w.checks.observe(m)
		}
		m.scheduleTick()
	})
}

// drain carries out Readys until the node has nothing more to do now.
func (m *member) drain() {
	for {
		rd := m.node.Ready()
		more := rd.More
		rd.More = false
		if rd.IsEmpty() {
			if more {
				m.scheduleWork()
			}
			return
		}
		m.carryOut(rd)
		if !m.up {
			return
		}
	}
}

func (m *member) scheduleWork() {
	if m.workPending {
		return
	}
	m.workPending = true
	m.w.after(1_000, m.event(func() { m.workPending = false }))
}

func (m *member) carryOut(rd core.Ready) {
	w := m.w
	if p := rd.Persist; p != nil {
		m.persist(p)
		if !m.up {
			return
		}
	}
	for _, msg := range rd.Messages {
		w.send(m, msg)
	}
	for _, s := range rd.Snapshots {
		w.sendSnapshot(m, s)
	}
	for _, pm := range rd.Peer {
		w.sendPeer(m, pm)
	}
	for _, r := range rd.Responses {
		if cb, ok := m.waiting[r.ID]; ok {
			delete(m.waiting, r.ID)
			cb(r)
		}
	}
	for _, o := range rd.Watch {
		w.trace.logf(w.now, "%s stream %d watch %d: %s", m.name, o.Stream, o.Resp.WatchId, describeWatch(o.Resp))
		if c := m.streams[o.Stream]; c != nil {
			c.deliver(m, o)
		}
	}
	if c := rd.Checkpoint; c != nil {
		delay := m.diskLatency() * 4
		m.w.after(delay, m.event(func() {
			size, err := m.disk.WriteCheckpoint(c)
			w.trace.logf(w.now, "%s checkpoint %d (%d bytes) err=%v", m.name, c.Index, size, err)
			m.node.CheckpointDone(c.Index, size, err)
		}))
	}
	for _, h := range rd.Hashes {
		m.node.CompactionHash(h.View.CompactionHash(mvcc.Revision(h.Rev)))
	}
	if r := rd.Release; r != nil {
		if err := m.disk.Release(r); err != nil {
			w.trace.logf(w.now, "%s release: %v", m.name, err)
		}
	}
}

// persist hands a log write to the WAL, which buffers it, and queues it
// for the disk's next turn, which writes it to the file and later fsyncs
// it.
func (m *member) persist(p *core.Persist) {
	w := m.w
	if err := m.disk.Write(p); err != nil {
		m.die(fmt.Sprintf("log write failed: %v", err))
		return
	}
	if p.Snapshot != nil {
		m.writtenLast = p.Snapshot.Index
	}
	if n := len(p.Entries); n > 0 {
		// Raft's log ends at the last entry it appends, an overwrite too.
		m.writtenLast = p.Entries[n-1].Index
	}
	desc := ""
	if n := len(p.Entries); n > 0 {
		desc = fmt.Sprintf(" entries %d-%d", p.Entries[0].Index, p.Entries[n-1].Index)
	}
	if hs := p.HardState; hs != nil {
		desc += fmt.Sprintf(" hs t%d v%d c%d", hs.Term, hs.Vote, hs.Commit)
	}
	if p.Snapshot != nil {
		desc += fmt.Sprintf(" snapshot %d", p.Snapshot.Index)
	}
	w.trace.logf(w.now, "%s write #%d%s sync=%v", m.name, p.ID, desc, p.Sync)
	m.walq = append(m.walq, walWrite{id: p.ID, sync: p.Sync})
	if !m.walBusy {
		m.walTurn()
	}
}

// walBatchMax is the most writes one turn takes, as the server's
// walQueueMax.
const walBatchMax = 1024

// walWrite is a log write waiting for the disk's next turn.
type walWrite struct {
	id   uint64
	sync bool
}

// walTurn models the server's log writer (server/walwriter.go): every
// write waiting when a turn starts shares one fsync, and the turn reports
// the last of them durable. Writes that arrive meanwhile wait for the next
// turn, so a slow disk makes batches larger instead of a queue that never
// drains.
func (m *member) walTurn() {
	w := m.w
	n := min(len(m.walq), walBatchMax)
	batch := m.walq[:n]
	m.walq, m.walBusy = m.walq[n:], true
	sync := false
	for _, b := range batch {
		sync = sync || b.sync
	}
	lat := int64(10)
	if sync {
		// The turn writes its records to the file now and fsyncs them
		// after the disk's latency: a crash in between leaves them
		// unsynced, to be lost or torn.
		if err := m.disk.WriteOut(); err != nil {
			m.die(fmt.Sprintf("log write failed: %v", err))
			return
		}
		if m.garbageArmed > 0 {
			// The crash is an event of its own, right after this one and
			// before the fsync's, so it never falls inside a start.
			m.w.schedule(m.w.now, m.event(func() { m.w.faults.garbageCrash(m) }))
		}
		lat = m.diskLatency()
	}
	last := batch[len(batch)-1].id
	w.schedule(w.now+lat, m.event(func() {
		if sync {
			if m.failSync {
				m.failSync = false
				m.die("fsync failed")
				return
			}
			if err := m.disk.Flush(); err != nil {
				m.die(fmt.Sprintf("fsync: %v", err))
				return
			}
			m.durableLast = m.writtenLast
		}
		w.trace.logf(w.now, "%s durable #%d", m.name, last)
		m.node.Persisted(last)
		m.walBusy = false
		if len(m.walq) > 0 {
			m.walTurn()
		}
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
	m.up, m.paused, m.node, m.disk = false, false, nil, nil
	m.inc++
	m.waiting = map[core.RequestID]func(core.Response){}
	m.deferred = nil
	// A dead process's watch streams break; their clients resume elsewhere.
	ids := make([]watch.StreamID, 0, len(m.streams))
	for id := range m.streams { //core:maporder-ok: sorted below
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		m.streams[id].broken()
	}
	m.streams = map[watch.StreamID]*watchClient{}
	m.workPending = false
	m.fs.Crash(tear)
	m.w.trace.logf(m.w.now, "%s crash", m.name)
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
	d := m.deferred
	m.deferred = nil
	for _, fn := range d {
		fn()
	}
}

// request hands a client request to the node; cb gets the response.
func (m *member) request(r core.Request, cb func(core.Response)) {
	m.nextReq++
	r.ID = m.nextReq
	m.waiting[r.ID] = cb
	m.node.Request(r)
}

// describe formats a raft message for the trace.
func describe(msg *raftpb.Message) string {
	s := fmt.Sprintf("%s t%d i%d lt%d c%d", msg.GetType(), msg.GetTerm(), msg.GetIndex(), msg.GetLogTerm(), msg.GetCommit())
	if n := len(msg.GetEntries()); n > 0 {
		s += fmt.Sprintf(" ents%d", n)
	}
	if msg.GetReject() {
		s += " reject"
	}
	return s
}

func cloneMsg(msg *raftpb.Message) *raftpb.Message { return proto.Clone(msg).(*raftpb.Message) }

func snapshotContent(s core.OutgoingSnapshot) ([]byte, error) {
	var buf bytes.Buffer
	err := s.Write(&buf)
	return buf.Bytes(), err
}
