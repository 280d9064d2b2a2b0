package corrupt

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
)

// fakeRuntime runs a round's loop calls on a node, answers its peer
// requests with peers and its requests with readErr.
type fakeRuntime struct {
	node    *core.Node
	peers   func(rev int64) []PeerHash
	readErr error
}

func (f *fakeRuntime) WithTimeout(time.Duration) (context.Context, context.CancelFunc) {
	return context.Background(), func() {}
}

func (f *fakeRuntime) OnLoop(_ context.Context, fn func(*core.Node)) error {
	fn(f.node)
	return nil
}

func (f *fakeRuntime) PeerHashes(rev int64) []PeerHash { return f.peers(rev) }

func (f *fakeRuntime) SerializableView(context.Context) (*mvcc.View, *pb.ResponseHeader, error) {
	return nil, nil, f.readErr
}

func (f *fakeRuntime) Do(context.Context, core.Request) (core.Response, error) {
	return core.Response{}, f.readErr
}

// newChecker is a checker for member 1 of a new cluster, with its log.
func newChecker(t *testing.T, peers func(h mvcc.KVHash, rev int64) []PeerHash) (*Checker, *fakeRuntime, *bytes.Buffer) {
	t.Helper()
	n, err := core.New(core.Config{ID: 1, ClusterID: 100, ProposalEpoch: 1 << 40,
		Members: []core.Member{{ID: 1, Name: "m1", PeerURLs: []string{"http://127.0.0.1:2380"}}}})
	if err != nil {
		t.Fatal(err)
	}
	rt := &fakeRuntime{node: n}
	h, _, err := LocalHash(context.Background(), rt.OnLoop, 0)
	if err != nil {
		t.Fatal(err)
	}
	rt.peers = func(rev int64) []PeerHash { return peers(h, rev) }
	var log bytes.Buffer
	c := &Checker{Log: slog.New(slog.NewTextHandler(&log, nil)), ID: 1, Timeout: time.Second, Runtime: rt, Requests: rt}
	return c, rt, &log
}

// agree answers with the local hash; differ with another at the same
// compaction.
func agree(h mvcc.KVHash, rev int64) []PeerHash {
	return []PeerHash{reply(2, rev, int64(h.CompactRev), h.Hash), reply(3, rev, int64(h.CompactRev), h.Hash)}
}

func differ(h mvcc.KVHash, rev int64) []PeerHash {
	return []PeerHash{reply(2, rev, int64(h.CompactRev), h.Hash), reply(3, rev, int64(h.CompactRev), h.Hash+1)}
}

// TestRounds: a round asks in etcd's order and acts on its verdict: the
// periodic check raises CORRUPT for the member whose hash differs, and
// nothing when all agree or its read fails; the initial check refuses to
// start on a differing hash.
func TestRounds(t *testing.T) {
	for _, c := range []struct {
		name    string
		peers   func(mvcc.KVHash, int64) []PeerHash
		readErr error
		round   func(*Checker) error
		wantErr error
		want    []string // log lines, in order
	}{
		{"periodic, all agree", agree, nil, (*Checker).Periodic, nil, []string{"finished peer corruption check"}},
		{"periodic, one differs", differ, nil, (*Checker).Periodic, nil,
			[]string{"same compact revision then hashes must match", `raising the CORRUPT alarm" member=3`, "finished peer corruption check"}},
		{"periodic, the read fails", differ, core.ErrStopped, (*Checker).Periodic, core.ErrStopped, nil},
		{"initial, all agree", agree, nil, (*Checker).Initial, nil,
			[]string{"starting initial corruption check", "initial corruption checking passed"}},
		{"initial, one differs", differ, nil, (*Checker).Initial, ErrDataInconsistency,
			[]string{"starting initial corruption check", "found different hash values from remote peer"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ck, rt, log := newChecker(t, c.peers)
			rt.readErr = c.readErr
			if err := c.round(ck); !errors.Is(err, c.wantErr) {
				t.Fatalf("round: %v, want %v", err, c.wantErr)
			}
			lines := strings.Split(strings.TrimSpace(log.String()), "\n")
			if len(c.want) == 0 && log.Len() > 0 || len(c.want) > 0 && len(lines) != len(c.want) {
				t.Fatalf("log:\n%s\nwant lines %q", log, c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("log line %d: %s, want %q", i, lines[i], w)
				}
			}
		})
	}
}

// TestCompactHashNothingKept: a member that kept no compaction hash
// checks nothing and asks no peer.
func TestCompactHashNothingKept(t *testing.T) {
	ck, _, _ := newChecker(t, func(mvcc.KVHash, int64) []PeerHash {
		t.Fatal("asked the peers with no hash kept")
		return nil
	})
	if got := ck.CompactHash(7); got != 7 {
		t.Fatalf("checked %d, want 7", got)
	}
}
