package core_test

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal/memfs"
)

// downgradeStep is one Downgrade request and etcd's answer to it: an
// error, or the cluster version the response reports; then the job's state
// in Status.
type downgradeStep struct {
	action      pb.DowngradeRequest_DowngradeAction
	version     string
	wantErr     error
	wantVersion string
	wantInfo    *pb.DowngradeInfo
}

func (s downgradeStep) check(t *testing.T, m *member) {
	t.Helper()
	r := m.do(core.Request{Downgrade: &pb.DowngradeRequest{Action: s.action, Version: s.version}})
	if !errors.Is(r.Err, s.wantErr) {
		t.Fatalf("%v %q: err %v, want %v", s.action, s.version, r.Err, s.wantErr)
	}
	if s.wantErr == nil {
		if v := r.Msg.(*pb.DowngradeResponse).Version; v != s.wantVersion {
			t.Fatalf("%v %q: version %q, want %q", s.action, s.version, v, s.wantVersion)
		}
	}
	info := m.do(core.Request{Status: true}).Msg.(*pb.StatusResponse).DowngradeInfo
	if info.Enabled != s.wantInfo.Enabled || info.TargetVersion != s.wantInfo.TargetVersion {
		t.Fatalf("%v %q: downgrade info %v, want %v", s.action, s.version, info, s.wantInfo)
	}
}

// waitClusterVersion ticks until the leader has set the cluster version.
func waitClusterVersion(t *testing.T, m *member, want string) {
	t.Helper()
	const ticksMax = 1000
	for i := 0; m.n.ClusterVersion() != want; i++ {
		if i == ticksMax {
			t.Fatalf("cluster version %q after %d ticks, want %q", m.n.ClusterVersion(), ticksMax, want)
		}
		m.n.Tick()
		m.settle()
	}
}

// TestDowngrade: etcd's rules for a downgrade job in a 3.7 cluster: only
// 3.6 is a valid target; enabling is replicated and moves the cluster
// version to the target, which survives a checkpoint and a crash;
// cancelling moves it back; cancelling without a job answers as etcd does
// (no error).
func TestDowngrade(t *testing.T) {
	const (
		validate = pb.DowngradeRequest_VALIDATE
		enable   = pb.DowngradeRequest_ENABLE
		cancel   = pb.DowngradeRequest_CANCEL
	)
	off := &pb.DowngradeInfo{}
	on := &pb.DowngradeInfo{Enabled: true, TargetVersion: "3.6.0"}
	cfg := testConfig()
	cfg.ClusterVersion = "3.7.0"
	fs := memfs.New()
	m := startMember(t, fs, cfg)
	waitClusterVersion(t, m, "3.7.0")
	for _, s := range []downgradeStep{
		{validate, "3.6", nil, "3.7", off},
		{validate, "3.6.9", nil, "3.7", off},
		{validate, "3.5", core.ErrInvalidDowngradeTargetVersion, "", off},
		{validate, "3.7", core.ErrInvalidDowngradeTargetVersion, "", off},
		{validate, "v3.6", core.ErrWrongDowngradeVersionFormat, "", off},
		{validate, "", core.ErrWrongDowngradeVersionFormat, "", off},
		{enable, "4.6", core.ErrInvalidDowngradeTargetVersion, "", off},
		{cancel, "", nil, "3.7", off},
		{pb.DowngradeRequest_DowngradeAction(7), "3.6", core.ErrUnknownMethod, "", off},
		{enable, "3.6.2", nil, "3.7", on},
		{validate, "3.6", core.ErrDowngradeInProcess, "", on},
	} {
		s.check(t, m)
	}
	waitClusterVersion(t, m, "3.6.0")
	for _, s := range []downgradeStep{
		// The cluster version is 3.6 now: 3.6 is no longer one below it.
		{validate, "3.6", core.ErrInvalidDowngradeTargetVersion, "", on},
		{enable, "3.5", core.ErrDowngradeInProcess, "", on},
	} {
		s.check(t, m)
	}
	m.n.ForceCheckpoint()
	m.settle()
	m = m.crash(nil)
	if v := m.n.ClusterVersion(); v != "3.6.0" {
		t.Fatalf("cluster version after checkpoint and crash: %q", v)
	}
	downgradeStep{validate, "3.5", core.ErrDowngradeInProcess, "", on}.check(t, m)
	downgradeStep{cancel, "", nil, "3.6", off}.check(t, m)
	waitClusterVersion(t, m, "3.7.0")
	m = m.crash(nil)
	downgradeStep{validate, "3.6", nil, "3.7", off}.check(t, m)
}
