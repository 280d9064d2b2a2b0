package server

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// clusterVersionOf reads a member's /version: its cluster version.
func clusterVersionOf(t *testing.T, endpoint string) string {
	t.Helper()
	resp, err := http.Get(endpoint + "/version")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Cluster string `json:"etcdcluster"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v.Cluster
}

// waitDowngradeState polls every member until its Status reports the
// downgrade job and its /version the cluster version wanted, which
// Status's storage version follows, as etcd's does.
func waitDowngradeState(t *testing.T, tc *testCluster, enabled bool, target, clusterVersion string) {
	t.Helper()
	const attemptsMax = 1500 // 30 s: a loaded machine may take that long
	for i := range tc.cfgs {
		cli := tc.client(i)
		ep := tc.cfgs[i].AdvertiseClientURLs[0]
		for try := 0; ; try++ {
			var info *pb.DowngradeInfo
			var storage string
			st, err := cli.Status(ctx(t), ep)
			if err == nil {
				info, storage = st.DowngradeInfo, st.StorageVersion
			}
			if err == nil && info.GetEnabled() == enabled && info.GetTargetVersion() == target && storage == clusterVersion && clusterVersionOf(t, ep) == clusterVersion {
				break
			}
			if try == attemptsMax {
				t.Fatalf("member %d: downgrade info %v (%v), storage version %q, cluster version %q; want enabled %v target %q cluster and storage %q",
					i, info, err, storage, clusterVersionOf(t, ep), enabled, target, clusterVersion)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestDowngradeReplicated: a downgrade job enabled on one member is seen
// by all, moves the cluster version to 3.6 everywhere, survives a restart
// of the cluster, and a cancel moves it back.
func TestDowngradeReplicated(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.leader()
	cli := tc.client(1)
	waitDowngradeState(t, tc, false, "", "3.7.0")
	resp, err := cli.Downgrade(ctx(t), clientv3.DowngradeEnable, "3.6")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Version != "3.7" {
		t.Fatalf("enable answered version %q, want 3.7", resp.Version)
	}
	waitDowngradeState(t, tc, true, "3.6.0", "3.6.0")
	for i := range tc.servers {
		tc.stop(i)
	}
	for i := range tc.servers {
		tc.start(i)
	}
	tc.leader()
	waitDowngradeState(t, tc, true, "3.6.0", "3.6.0")
	if _, err := tc.client(2).Downgrade(ctx(t), clientv3.DowngradeCancel, ""); err != nil {
		t.Fatal(err)
	}
	waitDowngradeState(t, tc, false, "", "3.7.0")
}
