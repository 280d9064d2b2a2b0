package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/status"
)

// dgStep is one step of the downgrade scenario: a Downgrade call, or,
// with settle set, a wait until the member's /version reports that
// cluster version (etcd's version monitor changes it every few seconds).
type dgStep struct {
	action  pb.DowngradeRequest_DowngradeAction
	version string
	settle  string
}

// dgSettleMax bounds the wait for a cluster version: etcd's monitor runs
// every 4 s.
const dgSettleMax = 60 * time.Second

// TestDowngradeDiff runs etcd's downgrade job scenario, validate, enable
// and cancel with valid and invalid targets, before and after the cluster
// version follows the job, against an embedded etcd and an in-process
// detcd (both 3.7, one member), and compares the answers (gRPC code and
// message, or the response's cluster version), Status's DowngradeInfo
// after each step, and /version's cluster and storage versions once
// settled.
func TestDowngradeDiff(t *testing.T) {
	const (
		validate = pb.DowngradeRequest_VALIDATE
		enable   = pb.DowngradeRequest_ENABLE
		cancel   = pb.DowngradeRequest_CANCEL
	)
	steps := []dgStep{
		{settle: "3.7.0"},
		{action: validate, version: "3.6"},
		{action: validate, version: "3.6.4"},
		{action: validate, version: "3.5"},
		{action: validate, version: "3.7"},
		{action: validate, version: "3.8.0"},
		{action: validate, version: "v3.6"},
		{action: validate, version: ""},
		{action: enable, version: "2.6"},
		{action: enable, version: "garbage"},
		{action: cancel},
		{action: pb.DowngradeRequest_DowngradeAction(9), version: "3.6"},
		{action: enable, version: "3.6.1"},
		{action: validate, version: "3.6"},
		{action: enable, version: "3.6"},
		{settle: "3.6.0"},
		{action: validate, version: "3.6"},
		{action: validate, version: "3.5"},
		{action: enable, version: "3.5"},
		{action: cancel},
		{settle: "3.7.0"},
		{action: cancel},
		{action: validate, version: "3.6"},
	}
	eaddr, estop := startEmbeddedEtcd(t, true)
	daddr, dstop := startInProcDetcd(t, true)
	e, d := dial(t, "etcd", eaddr, estop), dial(t, "detcd", daddr, dstop)
	defer e.close()
	defer d.close()
	for i, st := range steps {
		want, got := dgDo(t, e, eaddr, st), dgDo(t, d, daddr, st)
		t.Logf("step %d %s: %s", i, dgName(st), want)
		if want != got {
			t.Errorf("step %d %s:\n etcd:  %s\n detcd: %s", i, dgName(st), want, got)
		}
	}
}

func dgName(st dgStep) string {
	if st.settle != "" {
		return "settle " + st.settle
	}
	return fmt.Sprintf("%v %q", st.action, st.version)
}

// dgDo carries out one step on one server and describes what it saw.
func dgDo(t *testing.T, s *side, addr string, st dgStep) string {
	t.Helper()
	if st.settle != "" {
		return dgSettle(t, s, addr, st.settle)
	}
	var out string
	resp, err := s.mt.Downgrade(ctxT(t, 20*time.Second), &pb.DowngradeRequest{Action: st.action, Version: st.version})
	if err != nil {
		c := status.Convert(err)
		out = fmt.Sprintf("error %v %q", c.Code(), c.Message())
	} else {
		out = fmt.Sprintf("version %q, header %v", resp.Version, resp.Header != nil)
	}
	sr, err := s.mt.Status(ctxT(t, 20*time.Second), &pb.StatusRequest{})
	if err != nil {
		t.Fatalf("%s: status: %v", s.name, err)
	}
	return out + fmt.Sprintf("; downgrade info %v %q", sr.DowngradeInfo.GetEnabled(), sr.DowngradeInfo.GetTargetVersion())
}

// dgSettle waits until /version reports the cluster version wanted and
// returns what it reports.
func dgSettle(t *testing.T, s *side, addr, want string) string {
	t.Helper()
	deadline := time.Now().Add(dgSettleMax)
	for {
		cluster, storage := dgVersions(t, addr)
		if cluster == want && storage == want || time.Now().After(deadline) {
			return fmt.Sprintf("cluster %s, storage %s", cluster, storage)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func dgVersions(t *testing.T, addr string) (cluster, storage string) {
	t.Helper()
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	resp, err := http.Get(addr + "/version")
	if err != nil {
		t.Fatalf("/version: %v", err)
	}
	defer resp.Body.Close()
	var v struct {
		Cluster string `json:"etcdcluster"`
		Storage string `json:"storage"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("/version: %v", err)
	}
	return v.Cluster, v.Storage
}
