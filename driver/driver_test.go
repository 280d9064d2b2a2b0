package driver

import (
	"errors"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal/memfs"
	"github.com/detcd/detcd/core/watch"
	"github.com/detcd/detcd/disk"
)

// solo is a single member on an in-memory disk, driven by hand.
type solo struct {
	t   *testing.T
	env *Manual
	d   *Driver
}

type noTransport struct{ t *testing.T }

func (n noTransport) Send(ms []*raftpb.Message)       { n.t.Fatalf("a single member sent %v", ms) }
func (n noTransport) SendPeer(ms []*core.PeerMessage) { n.t.Fatalf("a single member sent %v", ms) }
func (n noTransport) SendSnapshot(s core.OutgoingSnapshot) {
	n.t.Fatalf("a single member sent a snapshot")
}

func newSolo(t *testing.T) *solo { return newSoloOn(t, memfs.New()) }

func newSoloOn(t *testing.T, fs *memfs.FS) *solo {
	t.Helper()
	cfg := core.Config{ID: 1, ClusterID: 100, ProposalEpoch: 1 << 40,
		Members: []core.Member{{ID: 1, Name: "m1", PeerURLs: []string{"http://127.0.0.1:2380"}}}}
	n, dk, err := disk.Open(fs, "data", cfg, disk.Options{SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s := &solo{t: t, env: &Manual{}}
	if s.d, err = New(Config{Node: n, Disk: dk, Env: s.env, Transport: noTransport{t}}); err != nil {
		t.Fatal(err)
	}
	s.settle()
	return s
}

// settle processes and runs background work until nothing moves.
func (s *solo) settle() {
	s.t.Helper()
	for i := 0; i < 1000; i++ {
		more := s.d.Process()
		if more {
			s.d.StepBackground()
		}
		if !s.env.RunPending() && !more {
			return
		}
	}
	s.t.Fatal("never settled")
}

func put(key string) core.Request {
	return core.Request{Put: &pb.PutRequest{Key: []byte(key), Value: []byte("v")}}
}

// TestGroupCommit: requests taken in one turn share one log write and one
// fsync, and none is answered before that fsync.
func TestGroupCommit(t *testing.T) {
	s := newSolo(t)
	answered := 0
	for _, k := range []string{"a", "b", "c", "d"} {
		s.d.Request(put(k), func(r core.Response) {
			if r.Err != nil {
				t.Errorf("put: %v", r.Err)
			}
			answered++
		})
	}
	s.d.Process()
	if s.env.Pending() != 1 {
		t.Fatalf("%d jobs after one turn, want the log writer's one", s.env.Pending())
	}
	j := s.env.pending[0]
	if len(j.Steps) != 2 || j.Steps[0].Kind != StepWALWrite || j.Steps[1].Kind != StepWALSync {
		t.Fatalf("the log writer's job: %v, want a write then an fsync", j.Steps)
	}
	if answered != 0 || s.d.Durable() >= s.d.Written() {
		t.Fatalf("before the fsync: %d answered, durable %d of %d written", answered, s.d.Durable(), s.d.Written())
	}
	s.settle()
	if answered != 4 || s.d.Durable() != s.d.Written() {
		t.Fatalf("after the fsync: %d answered, durable %d of %d written", answered, s.d.Durable(), s.d.Written())
	}
}

// TestFailedFsyncStops: a failed fsync is reported once and the driver
// carries out nothing more; nothing waiting is acknowledged.
func TestFailedFsyncStops(t *testing.T) {
	s := newSolo(t)
	var got *core.Response
	s.d.Request(put("a"), func(r core.Response) { got = &r })
	s.d.Process()
	s.env.pending[0].Steps[1].Run = func() error { return errors.New("disk gone") }
	s.env.RunPending()
	if s.env.Err == nil || !s.d.Failed() {
		t.Fatalf("failure not reported: %v", s.env.Err)
	}
	if did, _ := s.d.ProcessReady(); did || got != nil {
		t.Fatalf("after the failure: did %v, answered %v", did, got)
	}
}

type recordSink struct{ outs, ends int }

func (r *recordSink) Push(watch.Out) { r.outs++ }
func (r *recordSink) End()           { r.ends++ }

// TestShutdown answers every request still waiting with ErrStopped and
// ends every watch stream, once.
func TestShutdown(t *testing.T) {
	s := newSolo(t)
	var errs []error
	for _, k := range []string{"a", "b"} {
		s.d.Request(put(k), func(r core.Response) { errs = append(errs, r.Err) })
	}
	sink := &recordSink{}
	s.d.OpenWatch(1, sink)
	s.d.Shutdown()
	s.d.Shutdown()
	if len(errs) != 2 || !errors.Is(errs[0], core.ErrStopped) || !errors.Is(errs[1], core.ErrStopped) {
		t.Fatalf("waiters got %v, want ErrStopped twice", errs)
	}
	if sink.ends != 1 {
		t.Fatalf("the stream ended %d times, want once", sink.ends)
	}
}

// TestWALQueueBound: the log writer's queue reports itself saturated at
// WALQueueMax, so that runtimes stop taking requests.
func TestWALQueueBound(t *testing.T) {
	s := newSolo(t)
	s.d.wal.busy = true // a turn in flight: writes queue
	for i := 0; i < WALQueueMax; i++ {
		if s.d.Saturated() {
			t.Fatalf("saturated at %d of %d", i, WALQueueMax)
		}
		s.d.wal.queue = append(s.d.wal.queue, walOp{})
	}
	if !s.d.Saturated() {
		t.Fatal("not saturated at the bound")
	}
}

// TestReleaseRemovesOffTheLogWriter: the log segments a durable checkpoint
// makes redundant are taken off the log in the log writer's turn, but
// removed by a job of their own after it, which the next write's turn
// does not wait for: removing a few hundred MB of log took 0.1 s, a
// stall of every put behind it.
func TestReleaseRemovesOffTheLogWriter(t *testing.T) {
	fs := memfs.New()
	s := newSoloOn(t, fs)
	value := make([]byte, 64<<10)
	for i := range 40 { // 2.5 MiB of log: three segments of 1 MiB
		s.d.Request(core.Request{Put: &pb.PutRequest{Key: fmt.Appendf(nil, "k%d", i), Value: value}}, func(core.Response) {})
		s.settle()
	}
	const walDir = "data/member/wal"
	segments := func() int {
		names, err := fs.List(walDir)
		if err != nil {
			t.Fatal(err)
		}
		return len(names)
	}
	before := segments()
	if before < 3 {
		t.Fatalf("%d log segments, want at least 3", before)
	}
	// Everything but removals runs until until says so.
	withoutRemovals := func(what string, until func() bool) {
		t.Helper()
		for i := 0; !until(); i++ {
			if i > 100 {
				t.Fatalf("no %s", what)
			}
			s.d.Process()
			var removals []Job
			jobs := s.env.pending
			s.env.pending = nil
			for _, j := range jobs {
				if j.Steps[0].Kind == StepRemove {
					removals = append(removals, j)
				} else {
					j.Done(j.RunSteps())
				}
			}
			s.env.pending = append(removals, s.env.pending...)
		}
	}
	s.d.Node().ForceCheckpoint()
	withoutRemovals("release", func() bool { return s.d.wal.removing })
	if got := segments(); got != before {
		t.Fatalf("the log writer's turn removed segments: %d left of %d", got, before)
	}
	// A put now is written and answered while the removal waits.
	answered := false
	s.d.Request(put("during"), func(r core.Response) { answered = r.Err == nil })
	withoutRemovals("answer to a put", func() bool { return answered })
	if got := segments(); got != before {
		t.Fatalf("segments removed before the removal job ran: %d left of %d", got, before)
	}
	s.settle()
	if got := segments(); got >= before || !s.d.WALIdle() {
		t.Fatalf("after the removal job: %d segments of %d, log writer idle %v", got, before, s.d.WALIdle())
	}
}
