package core_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/core/wal/memfs"
	"github.com/detcd/detcd/disk"
	"github.com/detcd/detcd/driver"
)

// dropTransport loses everything: the tests hand snapshots over by hand.
type dropTransport struct{}

func (dropTransport) Send([]*raftpb.Message)             {}
func (dropTransport) SendPeer([]*core.PeerMessage)       {}
func (dropTransport) SendSnapshot(core.OutgoingSnapshot) {}

const snapDir = "data/member/snap"

// openWith opens a member over fs that sends nothing.
func openWith(t *testing.T, fs *memfs.FS, cfg core.Config) *member {
	t.Helper()
	n, d, err := disk.Open(fs, "data", cfg, disk.Options{SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	m := &member{t: t, fs: fs, cfg: cfg, n: n, d: d, env: &driver.Manual{}, got: map[core.RequestID]core.Response{}}
	if m.drv, err = driver.New(driver.Config{Node: n, Disk: d, Env: m.env, Transport: dropTransport{}}); err != nil {
		t.Fatal(err)
	}
	m.settle()
	return m
}

// leaderWithLearner is a one-voter cluster with keys, a lease and a learner
// (member 2) added, checkpointed: the checkpoint's content is what the
// leader streams to the learner.
func leaderWithLearner(t *testing.T) (lead *member, learnerCfg core.Config, content []byte, index uint64) {
	t.Helper()
	lead = openWith(t, memfs.New(), testConfig())
	add := lead.do(core.Request{MemberAdd: &pb.MemberAddRequest{PeerURLs: []string{"http://127.0.0.1:2381"}, IsLearner: true}, NewMemberID: 2})
	if add.Err != nil {
		t.Fatalf("member add: %v", add.Err)
	}
	grant := lead.do(core.Request{LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 600}})
	if grant.Err != nil {
		t.Fatalf("lease grant: %v", grant.Err)
	}
	for i := range 50 {
		put(lead, fmt.Sprintf("k%03d", i), strings.Repeat("v", i))
	}
	lead.do(core.Request{Put: &pb.PutRequest{Key: []byte("leased"), Value: []byte("x"), Lease: 7}})
	lead.n.ForceCheckpoint()
	lead.settle()
	idxs, err := wal.ListCheckpoints(lead.fs, snapDir)
	if err != nil || len(idxs) == 0 {
		t.Fatalf("leader checkpoints %v: %v", idxs, err)
	}
	index = idxs[len(idxs)-1]
	if content, err = wal.ReadCheckpoint(lead.fs, snapDir, index); err != nil {
		t.Fatal(err)
	}
	learnerCfg = core.Config{
		ID: 2, ClusterID: 100, Join: true, ProposalEpoch: 2 << 40,
		Members: append(testConfig().Members, core.Member{ID: 2, PeerURLs: []string{"http://127.0.0.1:2381"}, IsLearner: true}),
	}
	return lead, learnerCfg, content, index
}

func msgSnap(lead *member, index uint64) *raftpb.Message {
	term := lead.n.Term()
	return &raftpb.Message{
		Type: raftpb.MsgSnap.Enum(), From: new(uint64(1)), To: new(uint64(2)), Term: &term,
		Snapshot: &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
			Index: &index, Term: &term, ConfState: &raftpb.ConfState{Voters: []uint64{1}, Learners: []uint64{2}},
		}},
	}
}

// receive takes content through the driver's receive path, as if streamed
// with the leader's sum sum, and hands the file to the driver; it returns
// the outcome the driver reports.
func receive(t *testing.T, m *member, msg *raftpb.Message, content []byte, sum driver.SnapshotSum) error {
	t.Helper()
	r, err := driver.ReceiveSnapshot(m.d, msg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Write(content); err != nil {
		t.Fatal(err)
	}
	f, err := r.Finish(sum)
	if err != nil {
		return err
	}
	var got error
	reported := false
	m.drv.StepSnapshot(f, func(err error) { got, reported = err, true })
	m.settle()
	if !reported {
		t.Fatal("the driver never reported the snapshot's outcome")
	}
	return got
}

func sumOf(b []byte) driver.SnapshotSum {
	s := driver.SnapshotSummer{W: io.Discard}
	s.Write(b)
	return s.Sum()
}

// receiveTemps lists what is left of received files in the member's
// checkpoint directory.
func receiveTemps(t *testing.T, fs *memfs.FS) []string {
	t.Helper()
	names, err := fs.List(snapDir)
	if err != nil {
		t.Fatal(err)
	}
	var temps []string
	for _, n := range names {
		if strings.Contains(n, ".recv") {
			temps = append(temps, n)
		}
	}
	return temps
}

// sameState fails unless a and b hold the same key space and members.
func sameState(t *testing.T, a, b *member) {
	t.Helper()
	ha, err := a.n.HashKV(0)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := b.n.HashKV(0)
	if err != nil {
		t.Fatal(err)
	}
	if a.n.Rev() != b.n.Rev() || ha != hb {
		t.Fatalf("key space differs: rev %d hash %+v, leader's rev %d hash %+v", b.n.Rev(), hb, a.n.Rev(), ha)
	}
	if fmt.Sprint(a.n.Members()) != fmt.Sprint(b.n.Members()) {
		t.Fatalf("members %v, leader's %v", b.n.Members(), a.n.Members())
	}
	rr := b.do(core.Request{Range: &pb.RangeRequest{Key: []byte("leased"), Serializable: true}})
	if rr.Err != nil || len(rr.Msg.(*pb.RangeResponse).Kvs) != 1 || rr.Msg.(*pb.RangeResponse).Kvs[0].Lease != 7 {
		t.Fatalf("the leased key on the learner: %v %v", rr.Msg, rr.Err)
	}
}

// TestSnapshotInstall: a learner installs the leader's state through the
// receive path (file, checked, prepared off the loop) and ends with the
// leader's state, durably: the file became its checkpoint.
func TestSnapshotInstall(t *testing.T) {
	lead, cfg, content, index := leaderWithLearner(t)
	fs := memfs.New()
	m := openWith(t, fs, cfg)
	if err := receive(t, m, msgSnap(lead, index), content, sumOf(content)); err != nil {
		t.Fatalf("install: %v", err)
	}
	if got := m.n.AppliedIndex(); got != index {
		t.Fatalf("applied index %d after installing snapshot %d", got, index)
	}
	sameState(t, lead, m)
	if temps := receiveTemps(t, fs); len(temps) != 0 {
		t.Fatalf("received files left behind: %v", temps)
	}
	if idxs, _ := wal.ListCheckpoints(fs, snapDir); len(idxs) != 1 || idxs[0] != index {
		t.Fatalf("checkpoints %v, want the snapshot's %d", idxs, index)
	}
	// Crash: the state comes back from the checkpoint the file became.
	sameState(t, lead, m.crash(nil))
}

// TestSnapshotRefused: a snapshot that is torn, damaged, does not decode,
// is not at raft's index or is not ahead of the log is refused with an
// error that says so, leaves the member's state alone and leaves no file
// behind.
func TestSnapshotRefused(t *testing.T) {
	lead, cfg, content, index := leaderWithLearner(t)
	flipped := append([]byte(nil), content...)
	flipped[len(flipped)/2] ^= 0x40
	cut := content[:len(content)-10]
	tests := []struct {
		name    string
		content []byte
		sum     driver.SnapshotSum
		index   uint64
		// twice installs the snapshot first, so that the second is stale.
		twice bool
		want  error
		text  string
	}{
		{name: "torn", content: cut, sum: sumOf(content), index: index, text: "torn"},
		{name: "damaged", content: flipped, sum: sumOf(content), index: index, text: "damaged in transfer"},
		{name: "does not decode", content: cut, sum: sumOf(cut), index: index, want: core.ErrCorrupt},
		{name: "index mismatch", content: content, sum: sumOf(content), index: index + 1, want: core.ErrCorrupt, text: "raft's at"},
		{name: "stale", content: content, sum: sumOf(content), index: index, twice: true, want: core.ErrSnapshotRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := memfs.New()
			m := openWith(t, fs, cfg)
			if tt.twice {
				if err := receive(t, m, msgSnap(lead, index), content, sumOf(content)); err != nil {
					t.Fatalf("first install: %v", err)
				}
			}
			rev, applied := m.n.Rev(), m.n.AppliedIndex()
			err := receive(t, m, msgSnap(lead, tt.index), tt.content, tt.sum)
			switch {
			case err == nil:
				t.Fatal("accepted")
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("error %v, want %v", err, tt.want)
			case !strings.Contains(err.Error(), tt.text):
				t.Fatalf("error %q does not say %q", err, tt.text)
			}
			if m.n.Rev() != rev || m.n.AppliedIndex() != applied {
				t.Fatalf("state moved to rev %d index %d from %d %d", m.n.Rev(), m.n.AppliedIndex(), rev, applied)
			}
			if temps := receiveTemps(t, fs); len(temps) != 0 {
				t.Fatalf("received files left behind: %v", temps)
			}
		})
	}
}
