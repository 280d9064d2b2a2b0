package driver

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/core/watch"
	"github.com/detcd/detcd/disk"
)

// Config is what a Driver runs on.
type Config struct {
	Node      *core.Node
	Disk      *disk.Disk
	Env       Env
	Transport Transport
	// Observer is optional.
	Observer Observer
	// Logger is optional.
	Logger *slog.Logger
}

// Validate reports a Config a Driver cannot run on.
func (c *Config) Validate() error {
	switch {
	case c.Node == nil:
		return errors.New("driver: no node")
	case c.Disk == nil:
		return errors.New("driver: no disk")
	case c.Env == nil:
		return errors.New("driver: no runtime")
	case c.Transport == nil:
		return errors.New("driver: no transport")
	}
	return nil
}

// Driver carries out one node's Readys. Its methods run on the loop.
type Driver struct {
	node *core.Node
	disk *disk.Disk
	env  Env
	tr   Transport
	obs  Observer
	log  *slog.Logger

	nextID  core.RequestID
	waiters map[core.RequestID]func(core.Response)
	sinks   map[watch.StreamID]Sink
	// views wait for a view of the applied state until the member may
	// serve local reads (after a restart, once it applied what its log
	// had committed).
	views []func(*mvcc.View, *pb.ResponseHeader)
	wal   walWriter
	// failed is set once Env.Fail was called: nothing more is carried out.
	failed bool
	// abandon, once set, makes checkpoint writes in flight fail at their
	// next write (AbandonCheckpoints); set from the loop, read by jobs.
	abandon atomic.Bool
}

// New returns a driver for cfg's node.
func New(cfg Config) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Driver{
		node: cfg.Node, disk: cfg.Disk, env: cfg.Env, tr: cfg.Transport, obs: cfg.Observer, log: cfg.Logger,
		waiters: map[core.RequestID]func(core.Response){},
		sinks:   map[watch.StreamID]Sink{},
	}
	if d.obs == nil {
		d.obs = NopObserver{}
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	last := d.node.LastIndex()
	d.wal.written, d.wal.durable = last, last
	return d, nil
}

// Node is the driven node, for reading its state on the loop.
func (d *Driver) Node() *core.Node { return d.node }

// Failed reports whether the member failed (see Env.Fail).
func (d *Driver) Failed() bool { return d.failed }

// Request hands a client request to the node; cb gets the response, on
// the loop. The driver chooses the request's id and returns it.
func (d *Driver) Request(r core.Request, cb func(core.Response)) core.RequestID {
	d.nextID++
	r.ID = d.nextID
	d.waiters[r.ID] = cb
	d.node.Request(r)
	return r.ID
}

// Tick advances the node's logical clock by one tick.
func (d *Driver) Tick() { d.node.Tick() }

// Step hands the node a raft message from a peer.
func (d *Driver) Step(m *raftpb.Message) {
	if err := d.node.Step(m); err != nil {
		d.log.Debug("step", "err", err)
	}
}

// StepPeer hands the node a member-to-member message.
func (d *Driver) StepPeer(m *core.PeerMessage) { d.node.StepPeer(m) }

// ReportSnapshot tells the node how sending a snapshot went.
func (d *Driver) ReportSnapshot(to uint64, ok bool) { d.node.ReportSnapshot(to, ok) }

// ReportUnreachable tells the node a peer could not be reached.
func (d *Driver) ReportUnreachable(to uint64) { d.node.ReportUnreachable(to) }

// ReportPeerLost tells the node a peer's stream broke.
func (d *Driver) ReportPeerLost(peer uint64) { d.node.ReportPeerLost(peer) }

// OpenWatch opens a watch stream whose responses go to sink.
func (d *Driver) OpenWatch(id watch.StreamID, sink Sink) {
	d.sinks[id] = sink
	d.node.WatchOpen(id)
}

// WatchRequest hands a watch stream's request to the node.
func (d *Driver) WatchRequest(id watch.StreamID, r *pb.WatchRequest) { d.node.WatchRequest(id, r) }

// WatchCredit gives back the credit of responses a stream sent.
func (d *Driver) WatchCredit(id watch.StreamID, bytes int) { d.node.WatchCredit(id, bytes) }

// CloseWatch closes a watch stream.
func (d *Driver) CloseWatch(id watch.StreamID) {
	delete(d.sinks, id)
	d.node.WatchClose(id)
}

// View calls fn, on the loop, with a view of the applied state as soon
// as the member may serve local reads.
func (d *Driver) View(fn func(*mvcc.View, *pb.ResponseHeader)) {
	d.views = append(d.views, fn)
	d.serveViews()
}

func (d *Driver) serveViews() {
	if len(d.views) == 0 || !d.node.LocalReadsReady() {
		return
	}
	v, hdr := d.node.View()
	for _, fn := range d.views {
		fn(v, hdr)
	}
	d.views = d.views[:0]
}

// Process carries out the node's Readys until it has nothing more to do
// now. It reports whether the node has background work (physical
// compaction) for which the runtime should call StepBackground and
// Process again soon, even if nothing else happens.
func (d *Driver) Process() (more bool) {
	for {
		did, m := d.ProcessReady()
		more = more || m
		if !did {
			return more
		}
	}
}

// StepBackground does one bounded step of the node's background work
// (core.Node.StepBackground); Process then carries out what it led to.
// The runtime calls it in a turn of its own, paced apart from the turns
// that serve requests.
func (d *Driver) StepBackground() {
	if !d.failed {
		d.node.StepBackground()
	}
}

// ProcessReady carries out one Ready of the node, if it has one: did
// reports that it had, more that the node has background work pending.
// Transcript tests step members with it one Ready at a time.
func (d *Driver) ProcessReady() (did, more bool) {
	if d.failed {
		return false, false
	}
	rd := d.node.Ready()
	more, rd.More = rd.More, false
	if did = !rd.IsEmpty(); did {
		d.carryOut(rd)
	}
	if d.failed {
		return false, false
	}
	d.serveViews()
	if err := d.node.Err(); err != nil {
		d.fail(err)
		return false, false
	}
	return did, more
}

func (d *Driver) carryOut(rd core.Ready) {
	d.obs.Ready(&rd)
	if rd.Persist != nil || rd.Release != nil {
		d.wal.enqueue(d, walOp{persist: rd.Persist, release: rd.Release})
	}
	if c := rd.Checkpoint; c != nil {
		d.writeCheckpoint(c)
	}
	if rd.Load != nil {
		d.loadSnapshot(rd.Load)
	}
	for _, h := range rd.Hashes {
		d.hash(h)
	}
	for _, r := range rd.Responses {
		if cb, ok := d.waiters[r.ID]; ok {
			delete(d.waiters, r.ID)
			cb(r)
		}
	}
	for _, o := range rd.Watch {
		if sink, ok := d.sinks[o.Stream]; ok {
			sink.Push(o)
		}
	}
	if len(rd.Messages) > 0 {
		d.tr.Send(rd.Messages)
	}
	for _, s := range rd.Snapshots {
		d.tr.SendSnapshot(s)
	}
	if len(rd.Peer) > 0 {
		d.tr.SendPeer(rd.Peer)
	}
}

func (d *Driver) writeCheckpoint(c *core.Checkpoint) {
	start := d.env.Now()
	var size int64
	d.env.Background(Job{
		Steps: []Step{{Kind: StepCheckpoint, Run: func() (err error) {
			size, err = d.disk.WriteCheckpoint(&core.Checkpoint{Index: c.Index, Write: func(w io.Writer) error {
				return c.Write(abandonWriter{w: w, abandon: &d.abandon})
			}})
			return err
		}}},
		Done: func(err error) {
			took := d.env.Now().Sub(start)
			d.obs.Checkpointed(c.Index, size, took, err)
			if err == nil {
				d.log.Info("checkpoint durable", "index", c.Index, "bytes", size, "took", took.Round(1e6).String())
			} else {
				d.log.Warn("checkpoint failed", "index", c.Index, "err", err)
			}
			d.node.CheckpointDone(c.Index, size, err)
		},
	})
}

// errAbandoned fails a checkpoint write that a stop gave up waiting for.
var errAbandoned = errors.New("driver: checkpoint abandoned by the stop")

// abandonWriter fails its writes once abandon is set, so that a write
// abandoned ends at its next chunk: the checkpoint's temporary file is
// removed, and the previous checkpoint and the log stay what a restart
// reads.
type abandonWriter struct {
	w       io.Writer
	abandon *atomic.Bool
}

func (a abandonWriter) Write(p []byte) (int, error) {
	if a.abandon.Load() {
		return 0, errAbandoned
	}
	return a.w.Write(p)
}

// StopCheckpoint asks the node, at a clean stop, for the checkpoint that
// spares the restart its log tail (core.Node.StopCheckpoint), and starts
// it; CheckpointBusy then says whether to wait for it.
func (d *Driver) StopCheckpoint() {
	if d.failed {
		return
	}
	d.node.StopCheckpoint()
	d.Process()
}

// CheckpointBusy reports that a checkpoint is being written or about to
// be.
func (d *Driver) CheckpointBusy() bool { return !d.failed && d.node.CheckpointBusy() }

// AbandonCheckpoints makes checkpoint writes in flight fail at their
// next write: a stop that waited long enough gives up on them.
func (d *Driver) AbandonCheckpoints() { d.abandon.Store(true) }

// hash computes a compaction's key-space hash off the loop.
func (d *Driver) hash(j core.HashJob) {
	var h mvcc.KVHash
	d.env.Background(Job{
		Steps: []Step{{Kind: StepHash, Run: func() error {
			h = j.View.CompactionHash(mvcc.Revision(j.Rev))
			return nil
		}}},
		Done: func(error) { d.node.CompactionHash(h) },
	})
}

// Shutdown answers every request still waiting with core.ErrStopped and
// ends every watch stream. Log writes already handed over still complete
// (see WALIdle).
func (d *Driver) Shutdown() {
	for _, id := range slices.Sorted(maps.Keys(d.waiters)) {
		cb := d.waiters[id]
		delete(d.waiters, id)
		cb(core.Response{ID: id, Err: core.ErrStopped})
	}
	for _, id := range slices.Sorted(maps.Keys(d.sinks)) {
		d.sinks[id].End()
		delete(d.sinks, id)
	}
}

func (d *Driver) fail(err error) {
	if d.failed {
		return
	}
	d.failed = true
	d.env.Fail(err)
}

// errorf wraps a failure of the driver's own.
func errorf(format string, args ...any) error { return fmt.Errorf("driver: "+format, args...) }
