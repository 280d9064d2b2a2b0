package sim

import (
	"errors"
	"strconv"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/driver"
	"github.com/detcd/detcd/netsim"
)

// env is a member's runtime for the one driver: background work runs as
// the member's events in virtual time, each step after the latency its
// kind has on the simulated disk, with the disk's faults.
type env member

// walWriteUs is how long handing a turn's records to the file system
// takes; an fsync takes the disk's latency.
const walWriteUs = 10

// Now implements driver.Env: the world's virtual time.
func (e *env) Now() time.Time { return time.UnixMicro(e.w.now) }

// Fail implements driver.Env. A failed disk kills the process, and the
// fault schedule restarts it later; the node's own failure (removed from
// the cluster, or a bug) is the checkers' to judge, after the event.
func (e *env) Fail(err error) {
	m := (*member)(e)
	if nerr := m.node.Err(); nerr != nil && errors.Is(err, nerr) {
		return
	}
	m.die(err.Error())
}

// Background implements driver.Env.
func (e *env) Background(j driver.Job) { (*member)(e).step(j, 0) }

// step runs job j's step i as an event of its own, then the next, then
// j.Done; a crash in between drops the rest, as it would a goroutine's.
func (m *member) step(j driver.Job, i int) {
	s := j.Steps[i]
	at := m.w.now + m.stepLatency(s)
	if s.HoldsLoop {
		m.hold(at)
	}
	m.w.schedule(at, m.event(func() {
		if err := m.runStep(s); err != nil {
			j.Done(err)
			return
		}
		if i+1 < len(j.Steps) {
			m.step(j, i+1)
			return
		}
		j.Done(nil)
	}))
}

// hold keeps the member's loop busy until at, when the step that holds it
// ends: events that reach the member meanwhile wait, and its ticks are
// lost, as a loop blocked in a step would have them (a planted bug's).
func (m *member) hold(at int64) {
	m.held = true
	m.w.trace.logf(m.w.now, "%s loop held until %dus", m.name, at)
	inc := m.inc
	m.w.schedule(at, func() {
		if m.inc == inc {
			// The step itself runs next, then what waited.
			m.held = false
			m.w.schedule(m.w.now, func() {
				if m.inc == inc {
					m.runDeferred()
				}
			})
		}
	})
}

func (m *member) stepLatency(s driver.Step) int64 {
	switch s.Kind {
	case driver.StepWALWrite:
		return walWriteUs
	case driver.StepWALSync:
		return m.diskLatency()
	case driver.StepCheckpoint:
		return 4 * m.diskLatency()
	case driver.StepSnapshotLoad:
		// Read back and decoded at the disk's rate (snapbw.go); the head
		// checked before (StepSnapshotCheck) was in memory.
		return m.diskLatency() + netsim.TransferUs(m.w.snapshotBytes(s.Bytes), m.w.settings.DiskBytesPerSec)
	}
	return 0
}

// errFsync is the failure a failing-fsync fault injects.
var errFsync = errors.New("fsync failed")

// runStep runs a step with the faults armed for it.
func (m *member) runStep(s driver.Step) error {
	if s.Kind == driver.StepWALSync && m.failSync {
		m.failSync = false
		return errFsync
	}
	err := s.Run()
	if s.Kind == driver.StepWALWrite && err == nil && m.garbageArmed > 0 {
		// The crash is an event of its own, right after this one and
		// before the fsync's, so it never falls inside a start.
		m.w.schedule(m.w.now, m.event(func() { m.w.faults.garbageCrash(m) }))
	}
	return err
}

// transport carries a member's messages over the simulated network.
type transport member

// Send implements driver.Transport.
func (t *transport) Send(msgs []*raftpb.Message) {
	for _, msg := range msgs {
		t.w.send((*member)(t), msg)
	}
}

// SendPeer implements driver.Transport.
func (t *transport) SendPeer(msgs []*core.PeerMessage) {
	for _, pm := range msgs {
		t.w.sendPeer((*member)(t), pm)
	}
}

// SendSnapshot implements driver.Transport.
func (t *transport) SendSnapshot(s core.OutgoingSnapshot) { t.w.sendSnapshot((*member)(t), s) }

// observer writes what the driver does into the trace.
type observer member

// Ready implements driver.Observer.
func (o *observer) Ready(rd *core.Ready) {
	w := o.w
	if p := rd.Persist; p != nil {
		w.trace.log(w.now, o.name, " write #", strconv.FormatUint(p.ID, 10), describePersist(p), " sync=", strconv.FormatBool(p.Sync))
	}
	for _, out := range rd.Watch {
		w.trace.logf(w.now, "%s stream %d watch %d: %s", o.name, out.Stream, out.Resp.WatchId, describeWatch(out.Resp))
	}
}

// describePersist is a write's trace text: " entries %d-%d",
// " hs t%d v%d c%d" and " snapshot %d" where they apply; without fmt, as
// it runs for every write.
func describePersist(p *core.Persist) string {
	b := make([]byte, 0, 64)
	if n := len(p.Entries); n > 0 {
		b = appendField(b, " entries ", p.Entries[0].Index)
		b = appendField(b, "-", p.Entries[n-1].Index)
	}
	if hs := p.HardState; hs != nil {
		b = appendField(b, " hs t", hs.Term)
		b = appendField(b, " v", hs.Vote)
		b = appendField(b, " c", hs.Commit)
	}
	if p.Snapshot != nil {
		b = appendField(b, " snapshot ", p.Snapshot.Index)
	}
	return string(b)
}

// Wrote implements driver.Observer.
func (o *observer) Wrote(*core.Persist, time.Duration) {}

// Synced implements driver.Observer.
func (o *observer) Synced(time.Duration) {}

// Durable implements driver.Observer.
func (o *observer) Durable(id uint64) {
	o.w.trace.log(o.w.now, o.name, " durable #", strconv.FormatUint(id, 10))
}

// Checkpointed implements driver.Observer.
func (o *observer) Checkpointed(index uint64, size int64, _ time.Duration, err error) {
	o.w.trace.logf(o.w.now, "%s checkpoint %d (%d bytes) err=%v", o.name, index, size, err)
}
