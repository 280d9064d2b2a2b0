package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/driver"
	"github.com/detcd/detcd/internal/chunk"
	"github.com/detcd/detcd/snapresume"
)

// snapshotFiles lists a member's checkpoints and what is left of received
// snapshot files.
func snapshotFiles(t *testing.T, dataDir string) (checkpoints, temps []string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dataDir, "member", "snap"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch {
		case strings.Contains(e.Name(), ".recv"):
			temps = append(temps, e.Name())
		case strings.HasSuffix(e.Name(), ".ckpt"):
			checkpoints = append(checkpoints, e.Name())
		}
	}
	return checkpoints, temps
}

// TestLearnerJoinsBySnapshot: a learner added to a store whose log was
// compacted gets the state as a snapshot (received to disk, installed off
// the loop) and catches up while writes go on at the leader, none of them
// failing.
func TestLearnerJoinsBySnapshot(t *testing.T) {
	tc := newTestClusterWith(t, 2, "http", func(c *Config) { c.SnapshotCount, c.SnapshotCatchUpEntries = 100, 10 })
	c, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	lead := tc.leader()
	cli := tc.client(lead)
	value := strings.Repeat("v", 1024)
	for i := 0; i < 2000; i++ {
		if _, err := cli.Put(c, fmt.Sprintf("k%05d", i), value); err != nil {
			t.Fatal(err)
		}
	}

	// Writes at the leader for as long as the learner catches up.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := cli.Put(c, fmt.Sprintf("during%05d", i), "x"); err != nil {
				writeErr = fmt.Errorf("put %d while the learner caught up: %w", i, err)
				return
			}
		}
	}()

	ports := freePorts(t, 2)
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	err := retryWhile(t, "member add", func() error {
		_, err := cli.MemberAddAsLearner(c, []string{peer})
		return err
	}, rpctypes.ErrGRPCUnhealthy)
	if err != nil {
		t.Fatalf("member add: %v", err)
	}
	learner := tc.join("m2", client, peer)
	lcli := tc.client(learner)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		st, err := cli.Status(c, tc.cfgs[lead].AdvertiseClientURLs[0])
		if err != nil {
			t.Fatal(err)
		}
		lst, err := lcli.Status(c, client)
		if err == nil && lst.Header.Revision >= st.Header.Revision {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the learner never caught up: %v %v, the leader at %d", lst, err, st.Header.Revision)
		}
	}
	close(stop)
	wg.Wait()
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	g, err := lcli.Get(c, "k", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithSerializable())
	if err != nil || g.Count != 2000 {
		t.Fatalf("keys on the learner: %v %v", g, err)
	}
	ckpts, temps := snapshotFiles(t, tc.cfgs[learner].DataDir)
	if len(ckpts) == 0 || len(temps) != 0 {
		t.Fatalf("the learner's checkpoints %v and received files left %v: want the snapshot as a checkpoint and nothing left", ckpts, temps)
	}
}

// TestVoterJoinKeepsWrites: a voter added to a one-member cluster makes
// the quorum two of two, and its snapshot takes long to load (a hook
// holds the decode): the leader's writes still succeed meanwhile, as the
// new member answers raft for the snapshot once it is durable and for
// the entries after it, and it ends with the leader's state once the
// load goes on.
func TestVoterJoinKeepsWrites(t *testing.T) {
	tc := newTestClusterWith(t, 1, "http", func(c *Config) { c.SnapshotCount, c.SnapshotCatchUpEntries = 100, 10 })
	c, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cli := tc.client(tc.leader())
	const keys = 500
	for i := range keys {
		if _, err := cli.Put(c, fmt.Sprintf("k%05d", i), strings.Repeat("v", 1024)); err != nil {
			t.Fatal(err)
		}
	}

	loading, release := make(chan struct{}), make(chan struct{})
	var loadingOnce, releaseOnce sync.Once
	releaseLoad := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseLoad()
	holdLoad := func(k driver.StepKind) {
		if k == driver.StepSnapshotLoad {
			loadingOnce.Do(func() { close(loading) })
			<-release
		}
	}
	ports := freePorts(t, 2)
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	err := retryWhile(t, "member add", func() error {
		_, err := cli.MemberAdd(c, []string{peer})
		return err
	}, rpctypes.ErrGRPCUnhealthy)
	if err != nil {
		t.Fatalf("member add: %v", err)
	}
	joiner := tc.join("m1", client, peer, func(cfg *Config) { cfg.beforeStep = holdLoad })
	select {
	case <-loading:
	case <-c.Done():
		t.Fatal("the new member never started loading a snapshot")
	}
	for i := range 3 {
		if _, err := cli.Put(c, fmt.Sprintf("during%d", i), "x"); err != nil {
			t.Fatalf("put %d on the leader while the new voter loads its snapshot: %v", i, err)
		}
	}
	releaseLoad()
	jcli := tc.client(joiner)
	for ; ; time.Sleep(50 * time.Millisecond) {
		g, err := jcli.Get(c, "", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithSerializable())
		if err == nil && g.Count == keys+3 {
			break
		}
		if c.Err() != nil {
			t.Fatalf("the new member never caught up: %v %v", g, err)
		}
	}
}

// snapshotStream opens a snapshot stream on path to member s as member
// 99 and sends a MsgSnap of index and term.
func snapshotStream(t *testing.T, c context.Context, tc *testCluster, path string, index, term uint64) *peerCall {
	t.Helper()
	s := tc.servers[0]
	stream, err := s.peers.dialer.openStream(c, tc.cfgs[0].InitialAdvertisePeerURLs[0], path, s.peers.clusterID, 99, s.node.ID())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stream.close)
	m := &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: new(uint64(99)), To: new(s.node.ID()), Term: &term,
		Snapshot: &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: &index, Term: &term}}}
	mb, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.send(frameRaft, mb); err != nil {
		t.Fatal(err)
	}
	return stream
}

// TestSnapshotStreamResumes: a snapshot stream that ends without the
// leader's sum is refused as torn and its file kept; a stream of another
// snapshot on SnapshotResume is offered its chunks, and one whose sum
// does not match what the receiver put together leaves no file behind.
func TestSnapshotStreamResumes(t *testing.T) {
	tc := newTestCluster(t, 1)
	tc.leader()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream := snapshotStream(t, c, tc, pathSnapshot, 1000, 1)
	content := []byte(strings.Repeat("x", 3<<20))
	w := &chunk.Writer{Size: snapresume.ChunkBytes, Send: func(b []byte) error { return stream.send(frameChunk, b) }}
	for _, err := range []error{
		func() error { _, err := w.Write(content); return err }(),
		w.Flush(),
		stream.closeSend(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	err := stream.result()
	if err == nil || !strings.Contains(err.Error(), "torn") {
		t.Fatalf("a stream without the sum: %v, want it refused as torn", err)
	}
	if _, temps := snapshotFiles(t, tc.cfgs[0].DataDir); len(temps) != 1 {
		t.Fatalf("received files left: %v, want the torn one's, to resume", temps)
	}

	stream = snapshotStream(t, c, tc, pathSnapshotResume, 1001, 2)
	offer, err := receiveOffer(stream)
	if err != nil {
		t.Fatal(err)
	}
	x := snapresume.ChunkOf(content[:snapresume.ChunkBytes])
	if len(offer.Chunks) != 3 || !offer.Holds(2, x) {
		t.Fatalf("offered %d chunks, want the 3 of the torn stream", len(offer.Chunks))
	}
	held := func(i uint32) error {
		return stream.send(frameHeld, binary.LittleEndian.AppendUint32(nil, i))
	}
	for _, err := range []error{
		stream.send(frameChunk, []byte("another head")),
		held(1), // out of turn: chunk 0 is short
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.result(); err == nil || !strings.Contains(err.Error(), "skipped chunk 1 at offset 1048576 with 12 bytes arrived") {
		t.Fatalf("a held chunk out of turn: %v", err)
	}
	if _, temps := snapshotFiles(t, tc.cfgs[0].DataDir); len(temps) != 2 {
		t.Fatalf("received files left: %v, want both partials", temps)
	}

	stream = snapshotStream(t, c, tc, pathSnapshotResume, 1002, 2)
	if offer, err = receiveOffer(stream); err != nil || len(offer.Chunks) != 3 {
		t.Fatalf("offered %d chunks (%v), want the largest partial's 3", len(offer.Chunks), err)
	}
	bad := driver.SnapshotSum{Bytes: int64(len(content)), CRC: 1}
	for _, err := range []error{held(0), held(1), held(2), stream.send(frameSum, bad.Marshal()), stream.closeSend()} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.result(); err == nil || !strings.Contains(err.Error(), "damaged in transfer") {
		t.Fatalf("a resumed stream whose sum does not match: %v, want it refused", err)
	}
	if _, temps := snapshotFiles(t, tc.cfgs[0].DataDir); len(temps) != 1 {
		t.Fatalf("received files left: %v, want only the partial not resumed", temps)
	}
}
