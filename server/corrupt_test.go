package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/diskfs"
)

// tamperValue rewrites a stopped member's log so that the put of key
// carries another value of the same size: the member replays it into a
// key space that differs from its peers' at the same revision, as silent
// corruption would leave it.
func tamperValue(t *testing.T, dataDir, key string) {
	t.Helper()
	if cks, _ := os.ReadDir(filepath.Join(dataDir, "member", "snap")); len(cks) > 0 {
		t.Fatalf("the member wrote a checkpoint; the test tampers with its log only")
	}
	fsys := diskfs.New(dataDir)
	opts := wal.Options{Dir: "member/wal"}
	w, rec, err := wal.Open(fsys, opts, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	found := false
	for i, e := range rec.Entries {
		var r pb.InternalRaftRequest
		if proto.Unmarshal(e.Data, &r) != nil || r.Put == nil || string(r.Put.Key) != key {
			continue
		}
		r.Put.Value = []byte("tampered")
		if rec.Entries[i].Data, err = proto.Marshal(&r); err != nil {
			t.Fatal(err)
		}
		found = true
	}
	if !found {
		t.Fatalf("no put of %q in the log", key)
	}
	if err := os.RemoveAll(filepath.Join(dataDir, "member", "wal")); err != nil {
		t.Fatal(err)
	}
	if w, err = wal.Create(fsys, opts, rec.Meta); err != nil {
		t.Fatal(err)
	}
	if err := w.Save(&rec.HardState, rec.Entries); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// waitApplied waits until every running member is at the revision.
func (tc *testCluster) waitApplied(rev int64) {
	tc.t.Helper()
	for i := 0; i < 400; i++ {
		all := true
		for _, s := range tc.servers {
			all = all && (s == nil || s.Rev() >= rev)
		}
		if all {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tc.t.Fatalf("members never reached revision %d", rev)
}

// corruptMember writes to the cluster, then stops a follower, tampers with
// its log and restarts it; it returns the follower's index.
func (tc *testCluster) corruptMember(cli *clientv3.Client) int {
	tc.t.Helper()
	ctx := context.Background()
	var rev int64
	for _, k := range []string{"a", "b", "c"} {
		r, err := cli.Put(ctx, k, "original")
		if err != nil {
			tc.t.Fatal(err)
		}
		rev = r.Header.Revision
	}
	tc.waitApplied(rev)
	i := (tc.leader() + 1) % len(tc.servers)
	tc.stop(i)
	tamperValue(tc.t, tc.cfgs[i].DataDir, "b")
	return i
}

// TestInitialCorruptCheck: with the InitialCorruptCheck gate, a member
// restarting on data that differs from its peers' refuses to start with
// etcd's error; one with the same data starts.
func TestInitialCorruptCheck(t *testing.T) {
	tc := newTestClusterWith(t, 3, "http", func(c *Config) { c.FeatureGates = "InitialCorruptCheck=true" })
	tc.leader()
	cli := tc.client(tc.leader())
	i := tc.corruptMember(cli)
	s, err := New(tc.cfgs[i])
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start()
	s.Stop()
	if !errors.Is(err, ErrDataInconsistency) {
		t.Fatalf("start on tampered data: %v, want %v", err, ErrDataInconsistency)
	}
	want := "found data inconsistency with peers"
	if got := err.Error(); len(got) < len(want) || got[len(got)-len(want):] != want {
		t.Fatalf("error %q, want etcd's %q", got, want)
	}
	// A member whose data agrees passes the check.
	j := 3 - i - tc.leader()
	tc.stop(j)
	tc.start(j)
}

// TestCorruptChecksRaiseAlarm: the leader's periodic check and its
// compaction hash check find the member whose data differs and raise
// CORRUPT for it; writes then fail with etcd's DataLoss error on every
// member until the alarm is cleared.
func TestCorruptChecksRaiseAlarm(t *testing.T) {
	for _, c := range []struct {
		name    string
		mod     func(*Config)
		compact bool
	}{
		{"periodic", func(c *Config) { c.CorruptCheckTime = 200 * time.Millisecond }, false},
		{"compaction hash", func(c *Config) {
			c.FeatureGates = "CompactHashCheck=true"
			c.CompactHashCheckTime = 200 * time.Millisecond
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			tc := newTestClusterWith(t, 3, "http", c.mod)
			cli := tc.client(tc.leader())
			i := tc.corruptMember(cli)
			tc.start(i)
			ctx := context.Background()
			if c.compact {
				r, err := cli.Put(ctx, "d", "x")
				if err != nil {
					t.Fatal(err)
				}
				tc.waitApplied(r.Header.Revision)
				if _, err := cli.Compact(ctx, r.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
					t.Fatal(err)
				}
			}
			id := tc.servers[i].node.ID()
			var alarms []*pb.AlarmMember
			for n := 0; n < 400 && len(alarms) == 0; n++ {
				time.Sleep(50 * time.Millisecond)
				r, err := cli.AlarmList(ctx)
				if err != nil {
					t.Fatal(err)
				}
				alarms = r.Alarms
			}
			if len(alarms) != 1 || alarms[0].MemberID != id || alarms[0].Alarm != pb.AlarmType_CORRUPT {
				t.Fatalf("alarms %v, want CORRUPT for member %x", alarms, id)
			}
			for j := range tc.servers {
				_, err := tc.client(j).Put(ctx, "k", "v")
				var ee rpctypes.EtcdError
				if !errors.Is(err, rpctypes.ErrCorrupt) || !errors.As(err, &ee) || ee.Code() != codes.DataLoss {
					t.Fatalf("put on member %d with CORRUPT raised: %v", j, err)
				}
			}
			hr, err := http.Get(tc.cfgs[tc.leader()].AdvertiseClientURLs[0] + "/health")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(hr.Body)
			hr.Body.Close()
			if hr.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"reason":"ALARM CORRUPT"`) {
				t.Fatalf("/health with CORRUPT raised: %d %s", hr.StatusCode, body)
			}
			// What etcd's e2e TestHTTPLivezReadyzHandler "corrupt" case
			// asks of the member whose data differs: alive, not ready.
			checkHealthGets(t, tc.servers[i].Addrs()[0], []healthGet{
				{"GET", "/livez?verbose=true", 200, []string{"[+]serializable_read ok"}, nil},
				{"GET", "/readyz", 503, []string{"[+]serializable_read ok", "[-]data_corruption failed: alarm activated: CORRUPT"}, nil},
			})
			// The checks raise the alarm again while the member is there,
			// as etcd's do: take it out, then clear the alarm. A check that
			// had its answer before may still raise it once more.
			tc.stop(i)
			for n := 0; n < 20; n++ {
				if _, err = cli.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: id, Alarm: pb.AlarmType_CORRUPT}); err != nil {
					t.Fatal(err)
				}
				if _, err = cli.Put(ctx, "k", "v"); !errors.Is(err, rpctypes.ErrCorrupt) {
					break
				}
			}
			if err != nil {
				t.Fatalf("put after disarming: %v", err)
			}
		})
	}
}
