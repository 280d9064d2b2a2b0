package core

import (
	"fmt"

	"github.com/coreos/go-semver/semver"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/api/v3/version"
	"google.golang.org/protobuf/proto"
)

// etcd's downgrade job (Maintenance.Downgrade, `etcdctl downgrade`): an
// administrator validates, enables or cancels a downgrade of the cluster
// by one minor version. Enabling is applied through raft; while a job is
// on, the leader sets the cluster version to its target, and after a
// cancel back to the members' version, as etcd's version monitor does.
// detcd's members all run one version, so a job never completes: it stays
// on until cancelled, as it would in an etcd cluster whose members were
// not replaced by older ones.

// downgradeVersion parses a target version as etcd does: "3.6", "3.6.0"
// or "3.6.1" all mean cluster version 3.6.
func downgradeVersion(v string) (semver.Version, error) {
	ver, err := semver.NewVersion(v)
	if err != nil {
		if ver, err = semver.NewVersion(v + ".0"); err != nil {
			return semver.Version{}, ErrWrongDowngradeVersionFormat
		}
	}
	return semver.Version{Major: ver.Major, Minor: ver.Minor}, nil
}

// downgrade takes a Downgrade request: its version is checked at once,
// the rest after a linearizable read, as etcd reads the cluster's
// downgrade state.
func (n *Node) downgrade(r Request) {
	switch r.Downgrade.Action {
	case pb.DowngradeRequest_VALIDATE, pb.DowngradeRequest_ENABLE:
		if _, err := downgradeVersion(r.Downgrade.Version); err != nil {
			n.respond(r.ID, nil, err)
			return
		}
		if r.Downgrade.Action == pb.DowngradeRequest_VALIDATE && n.st.clusterVersion == "" {
			n.respond(r.ID, nil, ErrClusterVersionUnavailable)
			return
		}
	case pb.DowngradeRequest_CANCEL:
	default:
		n.respond(r.ID, nil, ErrUnknownMethod)
		return
	}
	n.reads.add(n, r)
}

// serveDowngrade answers a Downgrade request once a linearizable read
// allows it.
func (n *Node) serveDowngrade(r Request) {
	target, _ := downgradeVersion(r.Downgrade.Version)
	switch r.Downgrade.Action {
	case pb.DowngradeRequest_VALIDATE:
		if err := n.downgradeAllowed(target); err != nil {
			n.respond(r.ID, nil, err)
			return
		}
		n.respond(r.ID, n.downgradeResponse(), nil)
	case pb.DowngradeRequest_ENABLE:
		if err := n.downgradeAllowed(target); err != nil {
			n.log.Warn("reject downgrade request", "error", err.Error())
			n.respond(r.ID, nil, err)
			return
		}
		n.setDowngrade(r.ID, &membershippb.DowngradeInfoSetRequest{Enabled: true, Ver: target.String()}, true)
	case pb.DowngradeRequest_CANCEL:
		if n.st.downgradeTarget == "" {
			// etcd logs this and answers as if it had cancelled.
			n.log.Warn("failed to cancel downgrade", "error", "etcdserver: no inflight downgrade job")
			n.respond(r.ID, n.downgradeResponse(), nil)
			return
		}
		n.setDowngrade(r.ID, &membershippb.DowngradeInfoSetRequest{Enabled: false}, false)
	}
}

// downgradeAllowed is etcd's check of a target: exactly one minor
// version below the cluster's, and no job on already.
func (n *Node) downgradeAllowed(target semver.Version) error {
	if n.st.clusterVersion == "" {
		return ErrClusterVersionUnavailable
	}
	cv, err := semver.NewVersion(n.st.clusterVersion)
	if err != nil {
		return fmt.Errorf("%w: cluster version %q: %v", ErrCorrupt, n.st.clusterVersion, err)
	}
	if !target.Equal(semver.Version{Major: cv.Major, Minor: cv.Minor - 1}) {
		return ErrInvalidDowngradeTargetVersion
	}
	if n.st.downgradeTarget != "" {
		return ErrDowngradeInProcess
	}
	return nil
}

// setDowngrade proposes the job's new state and answers the client once
// it is applied. A failed cancel is answered as a success, as etcd only
// logs it; a failed enable gets its error.
func (n *Node) setDowngrade(id RequestID, set *membershippb.DowngradeInfoSetRequest, failIfNotApplied bool) {
	n.proposeInternal(&pb.InternalRaftRequest{DowngradeInfoSet: set}, func(_ proto.Message, err error) {
		if err != nil && failIfNotApplied {
			n.respond(id, nil, err)
			return
		}
		if err != nil {
			n.log.Warn("failed to cancel downgrade", "error", err.Error())
		}
		n.respond(id, n.downgradeResponse(), nil)
	})
}

func (n *Node) downgradeResponse() *pb.DowngradeResponse {
	return &pb.DowngradeResponse{Header: n.header(0), Version: version.Cluster(n.st.clusterVersion)}
}

// applyDowngradeInfoSet records the job's state, as etcd's cluster store
// does.
func (n *Node) applyDowngradeInfoSet(r *membershippb.DowngradeInfoSetRequest) {
	n.st.downgradeTarget = ""
	if r.Enabled {
		n.st.downgradeTarget = r.Ver
		n.log.Info("The server is ready to downgrade", "target-version", r.Ver)
	}
}

// wantClusterVersion is the cluster version the leader keeps: the
// downgrade's target while a job is on, else the members' version.
func (n *Node) wantClusterVersion() string {
	if n.st.downgradeTarget != "" {
		return n.st.downgradeTarget
	}
	return n.cfg.ClusterVersion
}

// downgradeInfo is Status's report of the job.
func (n *Node) downgradeInfo() *pb.DowngradeInfo {
	return &pb.DowngradeInfo{Enabled: n.st.downgradeTarget != "", TargetVersion: n.st.downgradeTarget}
}
