package core_test

import (
	"testing"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/core/wal/memfs"
	"github.com/detcd/detcd/core/watch"
	"github.com/detcd/detcd/disk"
)

// member drives one core.Node over an in-memory disk, synchronously: the
// smallest driver there is.
type member struct {
	t    testing.TB
	fs   *memfs.FS
	cfg  core.Config
	n    *core.Node
	d    *disk.Disk
	next core.RequestID
	got  map[core.RequestID]core.Response
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
	return &member{t: t, fs: fs, cfg: cfg, n: n, d: d, got: map[core.RequestID]core.Response{}}
}

// settle carries out Readys until there is nothing left to do.
func (m *member) settle() {
	m.t.Helper()
	for i := 0; i < 10000; i++ {
		rd := m.n.Ready()
		if rd.IsEmpty() {
			return
		}
		m.carryOut(rd)
	}
	m.t.Fatal("member never settled")
}

func (m *member) carryOut(rd core.Ready) {
	m.t.Helper()
	if rd.Persist != nil {
		if err := m.d.Persist(rd.Persist); err != nil {
			m.t.Fatalf("persist: %v", err)
		}
		m.n.Persisted(rd.Persist.ID)
	}
	if len(rd.Messages) > 0 {
		m.t.Fatalf("a single member sent messages: %v", rd.Messages)
	}
	for _, r := range rd.Responses {
		m.got[r.ID] = r
	}
	for _, o := range rd.Watch {
		m.watched = append(m.watched, o)
		if m.holdCredit {
			m.held = append(m.held, o)
		} else {
			m.n.WatchCredit(o.Stream, o.Bytes)
		}
	}
	if c := rd.Checkpoint; c != nil {
		size, err := m.d.WriteCheckpoint(c)
		m.n.CheckpointDone(c.Index, size, err)
	}
	for _, h := range rd.Hashes {
		m.n.CompactionHash(h.View.CompactionHash(mvcc.Revision(h.Rev)))
	}
	if rd.Release != nil {
		if err := m.d.Release(rd.Release); err != nil {
			m.t.Fatalf("release: %v", err)
		}
	}
}

// do sends a request and drives the member (ticking if it must) until the
// response arrives.
func (m *member) do(r core.Request) core.Response {
	m.t.Helper()
	m.next++
	r.ID = m.next
	m.n.Request(r)
	for i := 0; i < 200; i++ {
		m.settle()
		if resp, ok := m.got[r.ID]; ok {
			delete(m.got, r.ID)
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
