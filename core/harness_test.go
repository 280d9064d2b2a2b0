package core_test

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal/memfs"
	"github.com/detcd/detcd/core/watch"
	"github.com/detcd/detcd/disk"
	"github.com/detcd/detcd/driver"
)

// member drives one core.Node over an in-memory disk with the one
// driver, synchronously: background work runs when the test settles it.
type member struct {
	t   testing.TB
	fs  *memfs.FS
	cfg core.Config
	n   *core.Node
	d   *disk.Disk
	drv *driver.Driver
	env *driver.Manual
	got map[core.RequestID]core.Response
	// watched collects watch responses; credit is held back while
	// holdCredit is set, to play a slow consumer.
	watched    []watch.Out
	holdCredit bool
	held       []watch.Out
}

func testConfig() core.Config {
	return core.Config{
		ID: 1, ClusterID: 100,
		Members:       []core.Member{{ID: 1, Name: "m1", PeerURLs: []string{"http://127.0.0.1:2380"}}},
		ProposalEpoch: 1 << 40,
	}
}

// startMember opens a member's disk and settles it.
func startMember(t testing.TB, fs *memfs.FS, cfg core.Config) *member {
	t.Helper()
	m := openMember(t, fs, cfg)
	m.settle()
	return m
}

// openMember opens a member's disk (bootstrapping or restarting it) and
// leaves its first Ready to the caller.
func openMember(t testing.TB, fs *memfs.FS, cfg core.Config) *member {
	t.Helper()
	n, d, err := disk.Open(fs, "data", cfg, disk.Options{SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return newMember(t, fs, cfg, n, d)
}

func newMember(t testing.TB, fs *memfs.FS, cfg core.Config, n *core.Node, d *disk.Disk) *member {
	t.Helper()
	m := &member{t: t, fs: fs, cfg: cfg, n: n, d: d, env: &driver.Manual{}, got: map[core.RequestID]core.Response{}}
	drv, err := driver.New(driver.Config{Node: n, Disk: d, Env: m.env, Transport: soloTransport{t}})
	if err != nil {
		t.Fatal(err)
	}
	m.drv = drv
	return m
}

// soloTransport is a single member's: it never has anything to send.
type soloTransport struct{ t testing.TB }

func (s soloTransport) Send(msgs []*raftpb.Message) {
	s.t.Fatalf("a single member sent messages: %v", msgs)
}
func (s soloTransport) SendPeer(msgs []*core.PeerMessage) {
	s.t.Fatalf("a single member sent peer messages: %v", msgs)
}
func (s soloTransport) SendSnapshot(snap core.OutgoingSnapshot) {
	s.t.Fatalf("a single member sent a snapshot to %d", snap.To)
}

// settle carries out Readys and the work they hand off until there is
// nothing left to do.
func (m *member) settle() {
	m.t.Helper()
	for i := 0; i < 10000; i++ {
		more := m.drv.Process()
		if m.env.Err != nil {
			m.t.Fatalf("driver: %v", m.env.Err)
		}
		if more {
			m.drv.StepBackground()
		}
		if !m.env.RunPending() && !more {
			return
		}
	}
	m.t.Fatal("member never settled")
}

// request hands r to the member; its response lands in m.got under the
// id the driver chose, which request returns.
func (m *member) request(r core.Request) core.RequestID {
	return m.drv.Request(r, func(resp core.Response) { m.got[resp.ID] = resp })
}

// watchOpen opens a watch stream whose responses land in m.watched.
func (m *member) watchOpen(id watch.StreamID) { m.drv.OpenWatch(id, harnessSink{m}) }

type harnessSink struct{ m *member }

func (s harnessSink) Push(o watch.Out) {
	m := s.m
	m.watched = append(m.watched, o)
	if m.holdCredit {
		m.held = append(m.held, o)
	} else {
		m.n.WatchCredit(o.Stream, o.Bytes)
	}
}

func (s harnessSink) End() {}

// do sends a request and drives the member (ticking if it must) until the
// response arrives.
func (m *member) do(r core.Request) core.Response {
	m.t.Helper()
	id := m.request(r)
	for i := 0; i < 200; i++ {
		m.settle()
		if resp, ok := m.got[id]; ok {
			delete(m.got, id)
			return resp
		}
		m.n.Tick()
	}
	m.t.Fatalf("no response to %+v", r)
	return core.Response{}
}

// crash drops everything that was not synced and restarts from the disk.
func (m *member) crash(tear func(name string, unsynced int) int) *member {
	m.t.Helper()
	if tear == nil {
		tear = func(string, int) int { return 0 }
	}
	m.fs.Crash(tear)
	return startMember(m.t, m.fs, m.cfg)
}

// restart closes cleanly and starts again.
func (m *member) restart() *member {
	m.t.Helper()
	if err := m.d.Close(); err != nil {
		m.t.Fatalf("close: %v", err)
	}
	return startMember(m.t, m.fs, m.cfg)
}
