package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/detcd/detcd/snapresume"
)

// cuttingProxy forwards connections to a member's peer port and closes
// the first snapshot stream that carries more than cutBytes towards it:
// a snapshot stream broken mid-transfer. It keeps the first bytes of each connection
// towards the member.
type cuttingProxy struct {
	ln       net.Listener
	to       string
	cutBytes int64
	cut      atomic.Bool
	// holdAfterCut has the cut close every later connection at once,
	// until held is cleared: the member is out of reach.
	holdAfterCut, held atomic.Bool
	wg                 sync.WaitGroup
	mu                 sync.Mutex
	conns              []net.Conn // to close at the end
	heads              []string   // each connection's first read towards the member
}

// proxyHeadBytesMax bounds what the proxy keeps of a connection's head.
const proxyHeadBytesMax = 64

// connHeads are the first bytes of the connections so far.
func (p *cuttingProxy) connHeads() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.heads)
}

func newCuttingProxy(t *testing.T, to string, cutBytes int64) *cuttingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttingProxy{ln: ln, to: to, cutBytes: cutBytes}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *cuttingProxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.held.Load() {
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.to)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); p.forward(in, out) }()
		go func() { defer p.wg.Done(); io.Copy(in, out); in.Close() }()
	}
}

// forward copies in to out, cutting both once more than cutBytes of a
// snapshot stream passed, on the first connection that gets there: the
// raft message streams, which may carry as much while the learner
// catches up, are left alone.
func (p *cuttingProxy) forward(in, out net.Conn) {
	defer out.Close()
	buf := make([]byte, 64<<10)
	var n int64
	first, snapshot := true, false
	for {
		k, err := in.Read(buf)
		if k > 0 {
			if first {
				p.mu.Lock()
				p.heads = append(p.heads, string(buf[:min(k, proxyHeadBytesMax)]))
				p.mu.Unlock()
				first = false
			}
			// A connection may carry other requests before a snapshot's.
			snapshot = snapshot || bytes.Contains(buf[:k], []byte("POST "+pathSnapshot))
			if snapshot {
				n += int64(k)
			}
			if n > p.cutBytes && p.cut.CompareAndSwap(false, true) {
				p.held.Store(p.holdAfterCut.Load())
				in.Close()
				return
			}
			if _, err := out.Write(buf[:k]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// resumedBytes are the resumed-bytes of the snapshots a member's JSON log
// says it received.
func resumedBytes(t *testing.T, logs string) []int64 {
	t.Helper()
	var out []int64
	for _, line := range strings.Split(logs, "\n") {
		var rec struct {
			Msg     string `json:"msg"`
			Resumed int64  `json:"resumed-bytes"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "received a snapshot" {
			out = append(out, rec.Resumed)
		}
	}
	return out
}

// TestSnapshotTransferResumes: a learner joins a store whose log was
// compacted; the leader's snapshot stream to it breaks mid-transfer (a
// proxy in front of the learner's peer port cuts it), and the leader's
// next stream resumes from what the learner kept: the learner puts at
// least the chunks that arrived whole, past the first, together from its
// partial file, and catches up.
func TestSnapshotTransferResumes(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) { testSnapshotTransferResumes(t, restart) })
	}
}

// testSnapshotTransferResumes is TestSnapshotTransferResumes; with
// restart, the learner restarts after the cut, before the next stream
// reaches it, and resumes from the partial it finds on its disk.
func testSnapshotTransferResumes(t *testing.T, restart bool) {
	tc := newTestClusterWith(t, 1, "http", func(c *Config) { c.SnapshotCount, c.SnapshotCatchUpEntries = 100, 10 })
	c, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cli := tc.client(tc.leader())
	const keys = 5000
	value := strings.Repeat("v", 1024)
	for i := range keys {
		if _, err := cli.Put(c, fmt.Sprintf("k%05d", i), value); err != nil {
			t.Fatal(err)
		}
	}

	ports := freePorts(t, 2)
	const cutBytes = 4 * snapresume.ChunkBytes
	proxy := newCuttingProxy(t, fmt.Sprintf("127.0.0.1:%d", ports[1]), cutBytes)
	proxy.holdAfterCut.Store(restart)
	advertised := "http://" + proxy.ln.Addr().String()
	err := retryWhile(t, "member add", func() error {
		_, err := cli.MemberAddAsLearner(c, []string{advertised})
		return err
	}, rpctypes.ErrGRPCUnhealthy)
	if err != nil {
		t.Fatalf("member add: %v", err)
	}
	logs := &logBuffer{}
	cfg := DefaultConfig()
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	cfg.Name, cfg.DataDir = "learner", t.TempDir()
	cfg.ListenClientURLs, cfg.AdvertiseClientURLs = []string{client}, []string{client}
	cfg.ListenPeerURLs = []string{fmt.Sprintf("http://127.0.0.1:%d", ports[1])}
	cfg.InitialAdvertisePeerURLs = []string{advertised}
	cfg.InitialCluster = tc.cfgs[0].InitialCluster + ",learner=" + advertised
	cfg.InitialClusterState = "existing"
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	tc.cfgs = append(tc.cfgs, cfg)
	tc.servers = append(tc.servers, nil)
	learner := len(tc.servers) - 1
	tc.start(learner)
	if restart {
		// Once the learner took what came before the cut, and kept it.
		for !strings.Contains(logs.String(), "receiving a snapshot failed") {
			if c.Err() != nil {
				t.Fatalf("the learner never lost a snapshot stream (the proxy cut one: %v)", proxy.cut.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
		tc.stop(learner)
		tc.start(learner)
		if !strings.Contains(logs.String(), "kept a partial snapshot from before the restart") {
			t.Fatalf("the restarted learner kept no partial snapshot; its log:\n%s", logs)
		}
		proxy.held.Store(false)
	}

	lcli := tc.client(learner)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		g, err := lcli.Get(c, "k", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithSerializable())
		if err == nil && g.Count == keys {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the learner never caught up: %v %v; its snapshots resumed %v", g, err, resumedBytes(t, logs.String()))
		}
	}
	if !proxy.cut.Load() {
		t.Fatal("the proxy never cut a stream: the snapshot is smaller than the test needs")
	}
	got := resumedBytes(t, logs.String())

	t.Logf("the learner received snapshots resuming %v bytes", got)
	// The cut came after cutBytes: at least the chunks but the last one
	// in flight arrived whole, and all but the first (whose head names
	// the index) are the same in the next snapshot of the same data.
	if len(got) != 1 || got[0] < 2*snapresume.ChunkBytes {
		t.Fatalf("snapshots received with resumed bytes %v, want one resuming at least %d bytes", got, 2*snapresume.ChunkBytes)
	}
}
