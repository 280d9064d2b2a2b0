package core_test

import (
	"bytes"
	cryptorand "crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/core/wal/memfs"
	"github.com/detcd/detcd/core/watch"
	"github.com/detcd/detcd/disk"
	"github.com/detcd/detcd/driver"
)

// TestInteraction runs the protocol transcripts in testdata/interaction,
// in the style of raft's interaction tests: members of one cluster, each a
// core.Node on its own in-memory disk carried out by the one driver
// (package driver), joined by a network the transcript drives message by
// message. Regenerate the expected output with
//
//	go test ./core/ -run TestInteraction -rewrite
//
// and read every changed line before keeping it.
//
// Commands (ids are member ids, 1-5):
//
//	add-members <n> [elect=<id>] [election=10] [heartbeat=1] [request-timeout=20]
//	            [strict-reconfig=1] [lease-checkpoint=<ticks>]
//	                              bootstrap a new cluster of members 1..n
//	                              (and quietly elect <id> and settle)
//	join <id>                     start a member that joins the cluster
//	campaign <id>                 start an election now (a pre-vote first)
//	tick <id> [count]             advance the member's logical clock
//	request <id> <op> ...         a client request; ops: put k v [lease=N]
//	                              [prev-kv], range k [end] [rev=N]
//	                              [serializable], delete k [end] [prev-kv],
//	                              txn (if/then/else lines as input), compact
//	                              <rev>, lease-grant <ttl> [id=N],
//	                              lease-revoke <id>, lease-keepalive <id>,
//	                              lease-ttl <id> [keys], member-add <id>
//	                              [learner], member-promote <id>,
//	                              member-remove <id>, member-list,
//	                              move-leader <id>
//	watch <id> <key> [end] [rev=N] [prev-kv] [stream=N]
//	process-ready <id>...         one Ready each (Driver.ProcessReady):
//	                              writes, applied entries, messages sent,
//	                              responses, watch output; checkpoints and
//	                              hashes it asks for are done right after
//	sync <id>...                  run the log writer until it is idle: its
//	                              turns write, fsync if a write needs it,
//	                              and report durable; releases go with them
//	deliver-msgs [<to>|<from>-><to>]... [type=MsgApp] [drop|dup]
//	                              dup delivers each message twice, as a
//	                              network that duplicates does
//	stabilize [<id>...]           Ready, deliver, sync until nothing moves
//	partition <id>...             cut these members off from the others
//	heal                          undo the partition
//	checkpoint <id>               ask for a full-state checkpoint now
//	crash <id>                    lose everything not fsynced, and stop
//	restart <id>                  start again from what the disk holds
//	status <id>...
//
// Raft's election jitter reads crypto/rand.Reader; the test replaces it,
// around every call into a member, with a reader that makes member i's
// election timeout exactly election+i-1 ticks (10, 11, 12, ... by
// default), so transcripts are deterministic and elections predictable.
// Identical messages in one batch are printed once with a count (xN).
func TestInteraction(t *testing.T) {
	prev := cryptorand.Reader
	cryptorand.Reader = jitter(1)
	defer func() { cryptorand.Reader = prev }()
	datadriven.Walk(t, "testdata/interaction", func(t *testing.T, path string) {
		e := &env{t: t, members: map[uint64]*imember{}}
		datadriven.RunTest(t, path, e.handle)
	})
}

// jitter is raft's randomness for one member: a reader of one repeated
// byte, id-1, which makes the member's randomized election timeout exactly
// election+id-1 ticks. It is swapped in before every call into the member.
type jitter byte

func (j jitter) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(j) - 1
	}
	return len(p), nil
}

// node is the member's core.Node, with the member's jitter in place for
// the call about to be made.
func (m *imember) node() *core.Node {
	cryptorand.Reader = jitter(m.id)
	return m.n
}

// driver is the member's driver, with the member's jitter in place.
func (m *imember) driver() *driver.Driver {
	cryptorand.Reader = jitter(m.id)
	return m.drv
}

// env is one cluster and its network.
type env struct {
	t       *testing.T
	members map[uint64]*imember
	// net holds messages sent and not yet delivered, in send order.
	net []envelope
	// side is each member's side of a partition; members on different
	// sides cannot reach each other. Empty when healed.
	side    map[uint64]int
	nextReq core.RequestID
	// Timing of every member, in ticks.
	election, heartbeat, requestTimeout int
	initial                             []core.Member
	out                                 strings.Builder
	indent                              string
	// noStrictReconfig turns off the strict reconfiguration check.
	noStrictReconfig bool
	// leaseCheckpoint is how often the leader checkpoints remaining
	// lease TTLs, in ticks (0: core's default).
	leaseCheckpoint int64
}

// imember is a member of the interaction environment: a core.Node on its
// own in-memory disk, carried out by the one driver, plus what a
// transcript needs to show. It is the driver's runtime (driver.Env): the
// log writer's turns wait until sync runs them, so that a crash loses what
// was not synced; other background work (checkpoints, hashes) runs right
// after the Ready that handed it over.
type imember struct {
	e   *env
	id  uint64
	fs  *memfs.FS
	cfg core.Config
	// n and drv are the current incarnation's; fs and cfg outlive it.
	n       *core.Node
	dk      *disk.Disk
	drv     *driver.Driver
	up      bool
	inc     int
	streams map[watch.StreamID]bool
	// reqs maps the driver's ids of the requests waiting for an answer to
	// the transcript's.
	reqs map[core.RequestID]core.RequestID
	// walTurns are the log writer's turns waiting for sync; jobs the other
	// background work, waiting for the end of the Ready that handed it over.
	walTurns, jobs []driver.Job
	// log mirrors the entries written, to print what is applied; durable
	// is what of it was synced, what a crash leaves.
	log, durable map[uint64]wal.Entry
	applied      []applied
	// unsynced are writes handed to the log writer and not yet reported
	// durable; synced those reported during the sync under way; unflushed
	// those written (and reported, needing no fsync) with no fsync since.
	unsynced, synced, unflushed []uint64
	// releases are the Releases handed to the log writer and not yet done,
	// hashRevs the compaction revisions of the hash jobs not yet run.
	releases []*core.Release
	hashRevs []int64
	// snapAt is the index of the last snapshot installed from the leader.
	snapAt uint64
	// lead and term as last printed.
	lead, term uint64
}

type applied struct {
	index, term uint64
	data        []byte
}

// envelope is one message on the network.
type envelope struct {
	from, to uint64
	raft     *raftpb.Message
	peer     *core.PeerMessage
	snap     []byte // content beside a MsgSnap
}

func (e *env) handle(t *testing.T, d *datadriven.TestData) string {
	e.t = t
	e.out.Reset()
	e.indent = ""
	switch d.Cmd {
	case "add-members":
		e.addMembers(d)
	case "join":
		e.join(e.id(d, 0))
	case "campaign":
		m := e.up(e.id(d, 0))
		if err := m.node().Campaign(); err != nil {
			e.printf("campaign: %v", err)
		}
	case "tick":
		m := e.up(e.id(d, 0))
		count := 1
		if len(d.CmdArgs) > 1 {
			count = e.atoi(d.CmdArgs[1].Key)
		}
		for range count {
			m.driver().Tick()
		}
	case "request":
		e.request(d)
	case "watch":
		e.watch(d)
	case "process-ready":
		e.eachMember(d, "handling Ready", "<empty Ready>", e.processReady)
	case "sync":
		e.eachMember(d, "syncing", "nothing to sync", e.sync)
	case "deliver-msgs":
		e.deliverCmd(d)
	case "stabilize":
		e.stabilize(e.ids(d), len(d.CmdArgs) == 0)
	case "partition":
		e.side = map[uint64]int{}
		for _, id := range e.ids(d) {
			e.side[id] = 1
		}
		e.printf("cut off: %v", e.ids(d))
	case "heal":
		e.side = nil
	case "peer-lost":
		// peer-lost A B: A's transport saw its stream to B break.
		e.up(e.id(d, 0)).driver().ReportPeerLost(e.id(d, 1))
		e.printf("%d lost its stream to %d", e.id(d, 0), e.id(d, 1))
	case "checkpoint":
		e.up(e.id(d, 0)).node().ForceCheckpoint()
	case "crash":
		e.crash(e.up(e.id(d, 0)))
	case "restart":
		e.restart(e.id(d, 0))
	case "status":
		for _, id := range e.ids(d) {
			e.status(id)
		}
	default:
		d.Fatalf(t, "unknown command %s", d.Cmd)
	}
	return e.out.String()
}

// printf writes one line of output at the current indentation.
func (e *env) printf(format string, args ...any) {
	for line := range strings.SplitSeq(fmt.Sprintf(format, args...), "\n") {
		e.out.WriteString(e.indent + line + "\n")
	}
}

// section prints a "> title" header and indents what f prints, if header.
// eachMember runs do on every member the command names, under a header
// when there are several, and prints idle if do had nothing to do.
func (e *env) eachMember(d *datadriven.TestData, title, idle string, do func(*imember) bool) {
	ids := e.ids(d)
	for _, id := range ids {
		e.section(len(ids) > 1, fmt.Sprintf("%d %s", id, title), func() {
			if !do(e.up(id)) {
				e.printf("%s", idle)
			}
		})
	}
}

func (e *env) section(header bool, title string, f func()) {
	if !header {
		f()
		return
	}
	e.printf("> %s", title)
	old := e.indent
	e.indent += "  "
	f()
	e.indent = old
}

func (e *env) atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		e.t.Fatalf("not a number: %q", s)
	}
	return n
}

// id is the i-th argument as a member id.
func (e *env) id(d *datadriven.TestData, i int) uint64 {
	if len(d.CmdArgs) <= i {
		d.Fatalf(e.t, "%s needs a member id", d.Cmd)
	}
	return uint64(e.atoi(d.CmdArgs[i].Key))
}

// ids are the command's bare numeric arguments, or every member if none.
func (e *env) ids(d *datadriven.TestData) []uint64 {
	var ids []uint64
	for _, a := range d.CmdArgs {
		if len(a.Vals) == 0 {
			if n, err := strconv.Atoi(a.Key); err == nil {
				ids = append(ids, uint64(n))
			}
		}
	}
	if len(ids) == 0 && d.Cmd != "partition" {
		return e.allIDs()
	}
	return ids
}

func (e *env) allIDs() []uint64 {
	var ids []uint64
	for id := range e.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (e *env) up(id uint64) *imember {
	m := e.members[id]
	if m == nil || !m.up {
		e.t.Fatalf("member %d is not running", id)
	}
	return m
}

func (e *env) addMembers(d *datadriven.TestData) {
	n := int(e.id(d, 0))
	e.election, e.heartbeat, e.requestTimeout = 10, 1, 20
	var elect uint64
	for _, a := range d.CmdArgs[1:] {
		if len(a.Vals) != 1 {
			d.Fatalf(e.t, "add-members: bad argument %s", a.Key)
		}
		v := e.atoi(a.Vals[0])
		switch a.Key {
		case "elect":
			elect = uint64(v)
		case "election":
			e.election = v
		case "heartbeat":
			e.heartbeat = v
		case "request-timeout":
			e.requestTimeout = v
		case "strict-reconfig":
			e.noStrictReconfig = v == 0
		case "lease-checkpoint":
			e.leaseCheckpoint = int64(v)
		default:
			d.Fatalf(e.t, "unknown argument %s", a.Key)
		}
	}
	for i := 1; i <= n; i++ {
		e.initial = append(e.initial, memberOf(uint64(i)))
	}
	for i := 1; i <= n; i++ {
		m := e.newMember(uint64(i), e.initial, false)
		e.printf("%d bootstrapped: voters %s", m.id, e.voters(m))
	}
	if elect != 0 {
		// Settle the bootstrap and the election without printing them:
		// election_replication.txt shows them step by step.
		mark := e.out.Len()
		e.stabilize(e.allIDs(), true)
		if err := e.up(elect).node().Campaign(); err != nil {
			e.t.Fatal(err)
		}
		e.stabilize(e.allIDs(), true)
		s := e.out.String()[:mark]
		e.out.Reset()
		e.out.WriteString(s)
		for _, id := range e.allIDs() {
			e.status(id)
		}
	}
}

func memberOf(id uint64) core.Member {
	return core.Member{ID: id, Name: fmt.Sprintf("m%d", id), PeerURLs: []string{fmt.Sprintf("http://m%d:2380", id)}}
}

// join starts a member added with member-add: an empty disk, told to join.
func (e *env) join(id uint64) {
	if e.members[id] != nil {
		e.t.Fatalf("member %d exists", id)
	}
	e.newMember(id, append(slices.Clone(e.initial), memberOf(id)), true)
	e.printf("%d started, joining the cluster with an empty log", id)
}

func (e *env) newMember(id uint64, ms []core.Member, join bool) *imember {
	m := &imember{e: e, id: id, fs: memfs.New(), log: map[uint64]wal.Entry{}, durable: map[uint64]wal.Entry{}}
	m.cfg = core.Config{
		ID: id, ClusterID: 100, Members: ms, Join: join,
		ElectionTicks: e.election, HeartbeatTicks: e.heartbeat, RequestTimeoutTicks: e.requestTimeout,
		StrictReconfigCheckDisabled: e.noStrictReconfig,
		LeaseCheckpointTicks:        e.leaseCheckpoint,
		OnApply: func(index, term uint64, data []byte) {
			m.applied = append(m.applied, applied{index, term, data})
		},
	}
	e.members[id] = m
	e.open(m)
	return m
}

// open starts the member from its disk. Each incarnation draws proposal
// ids (and lease ids) from its own range, as drivers must.
func (e *env) open(m *imember) {
	m.inc++
	m.cfg.ProposalEpoch = m.id*1_000_000 + uint64(m.inc)*10_000
	m.applied = nil
	cryptorand.Reader = jitter(m.id)
	n, d, err := disk.Open(m.fs, "data", m.cfg, disk.Options{SegmentBytes: 1 << 20})
	if err != nil {
		e.t.Fatalf("open %d: %v", m.id, err)
	}
	drv, err := driver.New(driver.Config{
		Node: n, Disk: d, Env: m, Transport: transport{m}, Observer: observer{m: m},
		Logger: slog.New(slog.NewTextHandler(warnings{e}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	m.n, m.dk, m.drv, m.up = n, d, drv, true
	m.streams, m.reqs = map[watch.StreamID]bool{}, map[core.RequestID]core.RequestID{}
	m.walTurns, m.jobs, m.releases, m.hashRevs = nil, nil, nil, nil
	m.unsynced, m.synced, m.unflushed = nil, nil, nil
	m.lead, m.term = 0, 0
}

// warnings fails the test on what the driver logs as a warning (a
// release or checkpoint that failed on the in-memory disk).
type warnings struct{ e *env }

func (w warnings) Write(p []byte) (int, error) {
	w.e.t.Errorf("driver: %s", p)
	return len(p), nil
}

func (e *env) voters(m *imember) string {
	var v, l []string
	for _, mb := range m.cfg.Members {
		if mb.IsLearner {
			l = append(l, fmt.Sprint(mb.ID))
		} else {
			v = append(v, fmt.Sprint(mb.ID))
		}
	}
	s := "(" + strings.Join(v, " ") + ")"
	if len(l) > 0 {
		s += " learners (" + strings.Join(l, " ") + ")"
	}
	return s
}

func (e *env) crash(m *imember) {
	lost := ""
	if gone := append(slices.Clone(m.unflushed), m.unsynced...); len(gone) > 0 {
		lost = fmt.Sprintf("; unsynced writes %s lost", writeIDs(gone))
	}
	m.fs.Crash(func(string, int) int { return 0 })
	m.up = false
	m.log = maps.Clone(m.durable)
	e.printf("%d crashed%s", m.id, lost)
}

func (e *env) restart(id uint64) {
	m := e.members[id]
	if m == nil || m.up {
		e.t.Fatalf("member %d is not down", id)
	}
	e.open(m)
	n := m.n
	e.printf("%d restarted: term=%d commit=%d applied=%d last=%d rev=%d", id, n.Term(), n.Commit(), n.AppliedIndex(), n.LastIndex(), n.Rev())
	e.printApplied(m, "Replayed from the log:")
}

func (e *env) status(id uint64) {
	m := e.members[id]
	if m == nil || !m.up {
		e.printf("%d: down", id)
		return
	}
	n := m.n
	info := n.Info()
	var ms []string
	for _, mb := range info.Members {
		s := fmt.Sprint(mb.ID)
		if mb.IsLearner {
			s += "(learner)"
		}
		ms = append(ms, s)
	}
	s := fmt.Sprintf("%d: leader=%d term=%d commit=%d applied=%d last=%d rev=%d", id, info.Leader, info.Term, n.Commit(), info.AppliedIndex, n.LastIndex(), info.Revision)
	if info.CompactRev > 0 {
		s += fmt.Sprintf(" compacted=%d", info.CompactRev)
	}
	s += fmt.Sprintf(" members=(%s) pending=%d", strings.Join(ms, " "), info.PendingProposals)
	if err := n.Err(); err != nil {
		s += fmt.Sprintf(" failed: %v", err)
	}
	e.printf("%s", s)
}

// processReady has the member's driver take a step of background work,
// if any is pending, and carry out one Ready; the observer prints what
// it holds. The log writer's turn waits for sync; checkpoints and hashes
// are done right after, and printed.
func (e *env) processReady(m *imember) bool {
	mark := e.out.Len()
	m.driver().StepBackground()
	did, more := m.driver().ProcessReady()
	if !did {
		// Raft's state moved without anything to carry out.
		e.leader(m)
		e.printApplied(m, "Applied:")
	}
	m.runJobs()
	if more && e.out.Len() == mark {
		e.printf("(background work pending)")
	}
	return e.out.Len() > mark
}

// leader prints the member's leader and term if they changed.
func (e *env) leader(m *imember) {
	if lead, term := m.n.Leader(), m.n.Term(); lead != m.lead || term != m.term {
		m.lead, m.term = lead, term
		e.printf("Lead:%d Term:%d", lead, term)
	}
}

// printReady prints what a Ready holds, before the driver carries it out.
func (e *env) printReady(m *imember, rd *core.Ready) {
	e.leader(m)
	if p := rd.Persist; p != nil {
		e.persist(m, p)
	}
	e.printApplied(m, "Applied:")
	var msgs []string
	for _, msg := range rd.Messages {
		msgs = append(msgs, describeMsg(msg))
	}
	for _, s := range rd.Snapshots {
		msgs = append(msgs, fmt.Sprintf("%s (state at index %d beside it)", describeMsg(s.Msg), s.Index))
	}
	for _, pm := range rd.Peer {
		msgs = append(msgs, describePeer(pm))
	}
	if len(msgs) > 0 {
		e.printf("Messages:")
		e.printGrouped("  ", msgs)
	}
	if len(rd.Responses) > 0 {
		e.printf("Responses:")
		for _, r := range rd.Responses {
			id, ok := m.reqs[r.ID]
			if !ok {
				e.t.Fatalf("%d answered request %d, which it was not sent", m.id, r.ID)
			}
			r.ID = id
			e.printf("  %s", describeResponse(r))
		}
	}
	if len(rd.Watch) > 0 {
		e.printf("Watch:")
		for _, o := range rd.Watch {
			e.printf("  %s", strings.ReplaceAll(describeWatch(o), "\n", "\n  "))
		}
	}
	if r := rd.Release; r != nil {
		m.releases = append(m.releases, r)
		e.printf("Release log before %d, checkpoints before %d (to the log writer)", r.WALBefore, r.CheckpointsBefore)
	}
	for _, h := range rd.Hashes {
		m.hashRevs = append(m.hashRevs, h.Rev)
	}
}

func (e *env) persist(m *imember, p *core.Persist) {
	m.unsynced = append(m.unsynced, p.ID)
	head := fmt.Sprintf("Persist #%d", p.ID)
	if p.Sync {
		head += " (fsync)"
	} else {
		head += " (no fsync needed)"
	}
	head += ":"
	if hs := p.HardState; hs != nil {
		head += " HardState " + describeHardState(*hs)
	}
	if s := p.Snapshot; s != nil {
		head += fmt.Sprintf(" Snapshot at index %d (%d bytes)", s.Index, s.Bytes)
		m.snapAt = s.Index
	}
	if p.HardState == nil && p.Snapshot == nil && len(p.Entries) == 0 {
		head += " nothing to write, only to order what waits on it"
	}
	e.printf("%s", head)
	if len(p.Entries) > 0 {
		// A new tail replaces the old one from its first index on.
		first, last := p.Entries[0].Index, p.Entries[len(p.Entries)-1].Index
		var gone []uint64
		for k, old := range m.log {
			if k >= first && (k > last || old.Term != p.Entries[k-first].Term) {
				gone = append(gone, k)
			}
		}
		slices.Sort(gone)
		for _, k := range gone {
			old := m.log[k]
			e.printf("  replaces %s", describeEntry(raftpb.EntryType(old.Type), old.Term, old.Index, old.Data))
		}
		for k := range m.log {
			if k >= first {
				delete(m.log, k)
			}
		}
	}
	for _, ent := range p.Entries {
		m.log[ent.Index] = ent
		e.printf("  %s", describeEntry(raftpb.EntryType(ent.Type), ent.Term, ent.Index, ent.Data))
	}
}

// printApplied prints the entries the member applied since the last time,
// if any, under title.
func (e *env) printApplied(m *imember, title string) {
	if len(m.applied) == 0 {
		return
	}
	e.printf("%s", title)
	for _, a := range m.applied {
		if a.data == nil && a.index == m.snapAt {
			e.printf("  snapshot at %d/%d", a.term, a.index)
			continue
		}
		typ := raftpb.EntryNormal
		if ent, ok := m.log[a.index]; ok && ent.Term == a.term {
			typ = raftpb.EntryType(ent.Type)
		}
		e.printf("  %s", describeEntry(typ, a.term, a.index, a.data))
	}
	m.applied = nil
}

// printGrouped prints lines, identical ones once with a count, in the
// order of their first appearance.
func (e *env) printGrouped(prefix string, lines []string) {
	var order []string
	count := map[string]int{}
	for _, l := range lines {
		if count[l] == 0 {
			order = append(order, l)
		}
		count[l]++
	}
	for _, l := range order {
		if c := count[l]; c > 1 {
			l = fmt.Sprintf("%s (x%d)", l, c)
		}
		e.printf("%s%s", prefix, strings.ReplaceAll(l, "\n", "\n"+prefix))
	}
}

// syncTurnsMax bounds the log writer's turns one sync runs: each takes at
// least one of the writes the Readys handed over since the last sync.
const syncTurnsMax = 1 << 16

// sync runs the log writer's turns waiting, and those they start, until
// the writer is idle: the writes are made durable (if they asked for it)
// and reported to the node, releases done.
func (e *env) sync(m *imember) bool {
	if len(m.walTurns) == 0 {
		return false
	}
	for i := 0; len(m.walTurns) > 0; i++ {
		if i >= syncTurnsMax {
			e.t.Fatalf("%d: the log writer never gets idle", m.id)
		}
		j := m.walTurns[0]
		m.walTurns = m.walTurns[1:]
		cryptorand.Reader = jitter(m.id)
		runJob(j)
	}
	if !m.drv.WALIdle() && !m.drv.Failed() {
		e.t.Fatalf("%d: the log writer is busy with no turn waiting", m.id)
	}
	if len(m.synced) > 0 {
		e.printf("Persisted %s", writeIDs(m.synced))
		m.synced = nil
	}
	for _, r := range m.releases {
		e.printf("Released log before %d, checkpoints before %d", r.WALBefore, r.CheckpointsBefore)
	}
	m.releases = nil
	m.durable = maps.Clone(m.log)
	return true
}

// runJob runs a background job's steps and then its completion, as
// driver.Env promises.
func runJob(j driver.Job) { j.Done(j.RunSteps()) }

// runJobs runs the background work other than the log writer's, in the
// order it was handed over.
func (m *imember) runJobs() {
	for len(m.jobs) > 0 {
		j := m.jobs[0]
		m.jobs = m.jobs[1:]
		cryptorand.Reader = jitter(m.id)
		runJob(j)
		if j.Steps[0].Kind == driver.StepHash {
			m.e.printf("Hashed the key space at compaction revision %d", m.hashRevs[0])
			m.hashRevs = m.hashRevs[1:]
		}
	}
}

// Background implements driver.Env: a log writer's turn, and the removal
// of the files it released, wait for sync, other work for the end of the
// Ready.
func (m *imember) Background(j driver.Job) {
	if k := j.Steps[0].Kind; k == driver.StepWALWrite || k == driver.StepRemove {
		m.walTurns = append(m.walTurns, j)
	} else {
		m.jobs = append(m.jobs, j)
	}
}

// Now implements driver.Env: time stands still.
func (m *imember) Now() time.Time { return time.Time{} }

// Fail implements driver.Env.
func (m *imember) Fail(err error) { m.e.printf("%d failed: %v", m.id, err) }

// observer prints what the member's driver does.
type observer struct {
	driver.NopObserver
	m *imember
}

func (o observer) Ready(rd *core.Ready) { o.m.e.printReady(o.m, rd) }

// Durable moves the writes up to id from unsynced to synced.
func (o observer) Durable(id uint64) {
	m := o.m
	n := 0
	for n < len(m.unsynced) && m.unsynced[n] <= id {
		n++
	}
	m.synced = append(m.synced, m.unsynced[:n]...)
	m.unsynced = slices.Delete(m.unsynced, 0, n)
}

// Wrote: a write went to the disk, unsynced until the next fsync.
func (o observer) Wrote(p *core.Persist, _ time.Duration) {
	o.m.unflushed = append(o.m.unflushed, p.ID)
}

// Synced: the log was fsynced, with every write before.
func (o observer) Synced(time.Duration) { o.m.unflushed = nil }

func (o observer) Checkpointed(index uint64, _ int64, _ time.Duration, err error) {
	o.m.e.printf("Checkpoint at index %d written (err=%v)", index, err)
}

// transport puts what the member sends on the network.
type transport struct{ m *imember }

func (t transport) Send(msgs []*raftpb.Message) {
	for _, msg := range msgs {
		t.m.e.net = append(t.m.e.net, envelope{from: t.m.id, to: msg.GetTo(), raft: msg})
	}
}

func (t transport) SendPeer(msgs []*core.PeerMessage) {
	for _, pm := range msgs {
		t.m.e.net = append(t.m.e.net, envelope{from: pm.From, to: pm.To, peer: pm})
	}
}

func (t transport) SendSnapshot(s core.OutgoingSnapshot) {
	var buf bytes.Buffer
	if err := s.Write(&buf); err != nil {
		t.m.e.t.Fatalf("snapshot: %v", err)
	}
	t.m.e.net = append(t.m.e.net, envelope{from: t.m.id, to: s.To, raft: s.Msg, snap: buf.Bytes()})
}

// sink takes a watch stream's responses (printed with the Ready) and
// gives their credit back at once, as a consumer that keeps up.
type sink struct{ m *imember }

func (s sink) Push(o watch.Out) { s.m.drv.WatchCredit(o.Stream, o.Bytes) }
func (s sink) End()             {}

func writeIDs(ids []uint64) string {
	if len(ids) == 1 {
		return fmt.Sprintf("#%d", ids[0])
	}
	return fmt.Sprintf("#%d-#%d", ids[0], ids[len(ids)-1])
}

// deliverCmd: deliver-msgs [<to>|<from>-><to>]... [drop|dup]
func (e *env) deliverCmd(d *datadriven.TestData) {
	drop, dup := d.HasArg("drop"), d.HasArg("dup")
	typ := ""
	type link struct{ from, to uint64 }
	var links []link
	for _, a := range d.CmdArgs {
		if a.Key == "drop" || a.Key == "dup" {
			continue
		}
		if a.Key == "type" {
			typ = a.Vals[0]
			continue
		}
		if from, to, ok := strings.Cut(a.Key, "->"); ok {
			links = append(links, link{uint64(e.atoi(from)), uint64(e.atoi(to))})
		} else {
			links = append(links, link{0, uint64(e.atoi(a.Key))})
		}
	}
	match := func(env envelope) bool {
		if typ != "" && (env.raft == nil || env.raft.GetType().String() != typ) {
			return false
		}
		if len(links) == 0 {
			return true
		}
		for _, l := range links {
			if env.to == l.to && (l.from == 0 || env.from == l.from) {
				return true
			}
		}
		return false
	}
	if dup {
		e.net = append(e.net, slices.Collect(func(yield func(envelope) bool) {
			for _, env := range e.net {
				if match(env) && !yield(env) {
					return
				}
			}
		})...)
	}
	if e.deliver(match, drop) == 0 {
		e.printf("no messages")
	}
}

// deliver hands over (or drops) the queued messages that match, in send
// order, and returns how many there were.
func (e *env) deliver(match func(envelope) bool, drop bool) int {
	var take, keep []envelope
	for _, env := range e.net {
		if match(env) {
			take = append(take, env)
		} else {
			keep = append(keep, env)
		}
	}
	e.net = keep
	var lines []string
	for _, env := range take {
		desc := describeEnvelope(env)
		to := e.members[env.to]
		switch {
		case drop:
			lines = append(lines, "dropped: "+desc)
		case to == nil || !to.up:
			lines = append(lines, fmt.Sprintf("dropped (%d is down): %s", env.to, desc))
		case e.side != nil && e.side[env.from] != e.side[env.to]:
			lines = append(lines, "dropped (partitioned): "+desc)
		default:
			lines = append(lines, desc)
			if err := e.step(to, env); err != nil {
				lines = append(lines, "  step: "+err.Error())
			}
			continue
		}
		if env.snap != nil {
			if from := e.members[env.from]; from != nil && from.up {
				from.driver().ReportSnapshot(env.to, false)
			}
		}
	}
	e.printGrouped("", lines)
	return len(take)
}

func (e *env) step(to *imember, env envelope) error {
	switch {
	case env.peer != nil:
		to.driver().StepPeer(env.peer)
		return nil
	case env.snap != nil:
		err := to.receiveSnapshot(env)
		if from := e.members[env.from]; from != nil && from.up {
			from.driver().ReportSnapshot(env.to, err == nil)
		}
		return err
	}
	// The node's own Step, not the driver's, which only logs the error:
	// the transcript shows it.
	return to.node().Step(env.raft)
}

// receiveSnapshot takes a snapshot through the driver's receive path: its
// content into a file on the member's disk, then the load job, run at once.
func (m *imember) receiveSnapshot(env envelope) error {
	sum := driver.SnapshotSummer{W: io.Discard}
	sum.Write(env.snap)
	r, err := driver.ReceiveSnapshot(m.dk, env.raft)
	if err != nil {
		return err
	}
	if _, err := r.Write(env.snap); err != nil {
		r.Abort()
		return err
	}
	f, err := r.Finish(sum.Sum())
	if err != nil {
		return err
	}
	var stepErr error
	m.driver().StepSnapshot(f, func(err error) { stepErr = err })
	m.runJobs()
	return stepErr
}

func describeEnvelope(env envelope) string {
	if env.peer != nil {
		return describePeer(env.peer)
	}
	return describeMsg(env.raft)
}

// stabilize handles Readys, delivers messages and syncs writes on the
// given members until none of them has anything left to do.
// With all set, messages to members that are not running are dropped.
func (e *env) stabilize(ids []uint64, all bool) {
	for round := 0; ; round++ {
		if round > 200 {
			e.t.Fatal("stabilize does not converge")
		}
		done := true
		for _, id := range ids {
			m := e.members[id]
			if m == nil || !m.up {
				continue
			}
			mark, did := e.out.Len(), false
			e.section(true, fmt.Sprintf("%d handling Ready", id), func() { did = e.processReady(m) })
			if did {
				done = false
			} else {
				// Nothing to show: take back the header.
				s := e.out.String()[:mark]
				e.out.Reset()
				e.out.WriteString(s)
			}
		}
		recipients := slices.Clone(ids)
		if all {
			for _, env := range e.net {
				recipients = append(recipients, env.to)
			}
			slices.Sort(recipients)
			recipients = slices.Compact(recipients)
		}
		for _, id := range recipients {
			has := false
			for _, env := range e.net {
				has = has || env.to == id
			}
			if !has {
				continue
			}
			done = false
			e.section(true, fmt.Sprintf("%d receiving messages", id), func() {
				e.deliver(func(env envelope) bool { return env.to == id }, false)
			})
		}
		for _, id := range ids {
			if m := e.members[id]; m != nil && m.up && len(m.walTurns) > 0 {
				done = false
				e.section(true, fmt.Sprintf("%d syncing", id), func() { e.sync(m) })
			}
		}
		if done {
			return
		}
	}
}

// request: request <id> <op> <args>...; bare arguments are positional,
// key=value ones options.
func (e *env) request(d *datadriven.TestData) {
	m := e.up(e.id(d, 0))
	if len(d.CmdArgs) < 2 {
		d.Fatalf(e.t, "request needs an operation")
	}
	op := d.CmdArgs[1].Key
	var pos []string
	opts := map[string]string{}
	for _, a := range d.CmdArgs[2:] {
		switch {
		case len(a.Vals) > 0:
			opts[a.Key] = a.Vals[0]
		case a.Key == "prev-kv" || a.Key == "serializable" || a.Key == "learner" || a.Key == "keys" || a.Key == "linearizable" || a.Key == "physical":
			opts[a.Key] = "true"
		default:
			pos = append(pos, a.Key)
		}
	}
	arg := func(i int) string {
		if i >= len(pos) {
			d.Fatalf(e.t, "%s needs %d arguments", op, i+1)
		}
		return pos[i]
	}
	opt := func(k string) int64 {
		if v, ok := opts[k]; ok {
			return int64(e.atoi(v))
		}
		return 0
	}
	var r core.Request
	var desc string
	switch op {
	case "put":
		r.Put = &pb.PutRequest{Key: []byte(arg(0)), Value: []byte(arg(1)), Lease: opt("lease"), PrevKv: opts["prev-kv"] != ""}
		desc = describePut(r.Put)
	case "range":
		r.Range = &pb.RangeRequest{Key: []byte(arg(0)), Revision: opt("rev"), Serializable: opts["serializable"] != ""}
		if len(pos) > 1 {
			r.Range.RangeEnd = []byte(pos[1])
		}
		desc = describeRangeReq(r.Range)
	case "delete":
		r.DeleteRange = &pb.DeleteRangeRequest{Key: []byte(arg(0)), PrevKv: opts["prev-kv"] != ""}
		if len(pos) > 1 {
			r.DeleteRange.RangeEnd = []byte(pos[1])
		}
		desc = describeDelete(r.DeleteRange)
	case "txn":
		r.Txn = e.parseTxn(d)
		desc = describeTxn(r.Txn)
	case "compact":
		r.Compaction = &pb.CompactionRequest{Revision: int64(e.atoi(arg(0))), Physical: opts["physical"] != ""}
		desc = describeInternal(&pb.InternalRaftRequest{Compaction: r.Compaction})
	case "lease-grant":
		r.LeaseGrant = &pb.LeaseGrantRequest{TTL: int64(e.atoi(arg(0))), ID: opt("id")}
		desc = describeInternal(&pb.InternalRaftRequest{LeaseGrant: r.LeaseGrant})
	case "lease-revoke":
		r.LeaseRevoke = &pb.LeaseRevokeRequest{ID: int64(e.atoi(arg(0)))}
		desc = describeInternal(&pb.InternalRaftRequest{LeaseRevoke: r.LeaseRevoke})
	case "lease-keepalive":
		r.LeaseKeepAlive = &pb.LeaseKeepAliveRequest{ID: int64(e.atoi(arg(0)))}
		desc = fmt.Sprintf("lease-keepalive id=%d", r.LeaseKeepAlive.ID)
	case "lease-ttl":
		r.LeaseTimeToLive = &pb.LeaseTimeToLiveRequest{ID: int64(e.atoi(arg(0))), Keys: opts["keys"] != ""}
		desc = fmt.Sprintf("lease-ttl id=%d", r.LeaseTimeToLive.ID)
	case "member-add":
		id := uint64(e.atoi(arg(0)))
		r.MemberAdd = &pb.MemberAddRequest{PeerURLs: memberOf(id).PeerURLs, IsLearner: opts["learner"] != ""}
		r.NewMemberID = id
		desc = fmt.Sprintf("member-add %d %s", id, r.MemberAdd.PeerURLs[0])
		if r.MemberAdd.IsLearner {
			desc += " as learner"
		}
	case "member-promote":
		r.MemberPromote = &pb.MemberPromoteRequest{ID: uint64(e.atoi(arg(0)))}
		desc = fmt.Sprintf("member-promote %d", r.MemberPromote.ID)
	case "member-remove":
		r.MemberRemove = &pb.MemberRemoveRequest{ID: uint64(e.atoi(arg(0)))}
		desc = fmt.Sprintf("member-remove %d", r.MemberRemove.ID)
	case "move-leader":
		r.MoveLeader = &pb.MoveLeaderRequest{TargetID: uint64(e.atoi(arg(0)))}
		desc = fmt.Sprintf("move-leader %d", r.MoveLeader.TargetID)
	case "hand-off":
		r.HandOff = true
		desc = "hand-off"
	case "member-list":
		r.MemberList = &pb.MemberListRequest{Linearizable: opts["linearizable"] != ""}
		desc = "member-list"
	case "defrag":
		r.Defragment = true
		desc = "defragment"
	default:
		d.Fatalf(e.t, "unknown request %s", op)
	}
	e.printf("#%d to %d: %s", e.submit(m, r), m.id, desc)
}

// submit hands r to the member's driver under the transcript's next
// request id, which it returns.
func (e *env) submit(m *imember, r core.Request) core.RequestID {
	e.nextReq++
	m.reqs[m.driver().Request(r, func(resp core.Response) { delete(m.reqs, resp.ID) })] = e.nextReq
	return e.nextReq
}

// parseTxn reads a transaction from the command's input:
//
//	if mod(a) = 2
//	then put a 3
//	else range a
func (e *env) parseTxn(d *datadriven.TestData) *pb.TxnRequest {
	t := &pb.TxnRequest{}
	for line := range strings.SplitSeq(strings.TrimSpace(d.Input), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			d.Fatalf(e.t, "bad txn line %q", line)
		}
		switch f[0] {
		case "if":
			if len(f) != 4 {
				d.Fatalf(e.t, "want: if <target>(<key>) <op> <value>")
			}
			target, key, _ := strings.Cut(strings.TrimSuffix(f[1], ")"), "(")
			c := &pb.Compare{Key: []byte(key)}
			c.Result = map[string]pb.Compare_CompareResult{"=": pb.Compare_EQUAL, "!=": pb.Compare_NOT_EQUAL, ">": pb.Compare_GREATER, "<": pb.Compare_LESS}[f[2]]
			switch target {
			case "value":
				c.Target, c.TargetUnion = pb.Compare_VALUE, &pb.Compare_Value{Value: []byte(f[3])}
			case "version":
				c.Target, c.TargetUnion = pb.Compare_VERSION, &pb.Compare_Version{Version: int64(e.atoi(f[3]))}
			case "create":
				c.Target, c.TargetUnion = pb.Compare_CREATE, &pb.Compare_CreateRevision{CreateRevision: int64(e.atoi(f[3]))}
			case "mod":
				c.Target, c.TargetUnion = pb.Compare_MOD, &pb.Compare_ModRevision{ModRevision: int64(e.atoi(f[3]))}
			default:
				d.Fatalf(e.t, "unknown compare target %q", target)
			}
			t.Compare = append(t.Compare, c)
		case "then", "else":
			var op *pb.RequestOp
			switch {
			case f[1] == "put" && len(f) == 4:
				op = &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(f[2]), Value: []byte(f[3])}}}
			case f[1] == "delete" && len(f) == 3:
				op = &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(f[2])}}}
			case f[1] == "range" && len(f) == 3:
				op = &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(f[2])}}}
			default:
				d.Fatalf(e.t, "bad txn op %q", line)
			}
			if f[0] == "then" {
				t.Success = append(t.Success, op)
			} else {
				t.Failure = append(t.Failure, op)
			}
		default:
			d.Fatalf(e.t, "bad txn line %q", line)
		}
	}
	return t
}

// watch: watch <id> <key> [end] [rev=N] [prev-kv] [stream=N]
func (e *env) watch(d *datadriven.TestData) {
	m := e.up(e.id(d, 0))
	c := &pb.WatchCreateRequest{}
	stream := watch.StreamID(1)
	var pos []string
	for _, a := range d.CmdArgs[1:] {
		switch {
		case a.Key == "rev":
			c.StartRevision = int64(e.atoi(a.Vals[0]))
		case a.Key == "stream":
			stream = watch.StreamID(e.atoi(a.Vals[0]))
		case a.Key == "prev-kv":
			c.PrevKv = true
		default:
			pos = append(pos, a.Key)
		}
	}
	if len(pos) == 0 {
		d.Fatalf(e.t, "watch needs a key")
	}
	c.Key = []byte(pos[0])
	if len(pos) > 1 {
		c.RangeEnd = []byte(pos[1])
	}
	if !m.streams[stream] {
		m.streams[stream] = true
		m.driver().OpenWatch(stream, sink{m})
	}
	m.driver().WatchRequest(stream, &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: c}})
	s := fmt.Sprintf("stream %d on %d: watch %s", stream, m.id, describeRange(c.Key, c.RangeEnd))
	if c.StartRevision != 0 {
		s += fmt.Sprintf(" from rev=%d", c.StartRevision)
	}
	e.printf("%s", s)
}
