package tests

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/status"
)

// TestClusterDiff sends the same Cluster requests to an embedded etcd
// 3.7.3 and to an in-process detcd, one member each, over raw gRPC (clientv3
// checks peer URLs itself), and compares the answers: peer URLs that etcd
// refuses (no port, a path, another scheme, none), a learner's URLs as
// they are kept, the second voter of a one-member cluster, which the
// strict reconfiguration check lets in, and a third, which it refuses as
// the second never started.
func TestClusterDiff(t *testing.T) {
	eaddr, estop := startEmbeddedEtcd(t, true)
	daddr, dstop := startInProcDetcd(t, true)
	sides := []*side{dial(t, "etcd", eaddr, estop), dial(t, "detcd", daddr, dstop)}
	defer func() {
		for _, s := range sides {
			s.close()
		}
	}()
	nowhere := func() string { return loopbackURL(freePort(t)) }
	learnerURLs := []string{nowhere(), nowhere()}
	slices.Sort(learnerURLs)
	steps := []struct {
		name string
		req  *pb.MemberAddRequest
	}{
		{"no URLs", &pb.MemberAddRequest{}},
		{"no port", &pb.MemberAddRequest{PeerURLs: []string{"http://127.0.0.1"}}},
		{"no port, https", &pb.MemberAddRequest{PeerURLs: []string{"https://example.com"}}},
		{"a path", &pb.MemberAddRequest{PeerURLs: []string{nowhere() + "/peer"}}},
		{"a slash", &pb.MemberAddRequest{PeerURLs: []string{nowhere() + "/"}}},
		{"ftp", &pb.MemberAddRequest{PeerURLs: []string{"ftp://127.0.0.1:2380"}}},
		{"no scheme", &pb.MemberAddRequest{PeerURLs: []string{"127.0.0.1:2380"}}},
		{"one good, one without a port", &pb.MemberAddRequest{PeerURLs: []string{nowhere(), "http://127.0.0.1"}}},
		{"a learner, URLs unsorted and padded", &pb.MemberAddRequest{PeerURLs: []string{" " + learnerURLs[1] + " ", learnerURLs[0]}, IsLearner: true}},
		{"a second voter", &pb.MemberAddRequest{PeerURLs: []string{nowhere()}}},
		{"a third voter, the second never started", &pb.MemberAddRequest{PeerURLs: []string{nowhere()}}},
	}
	for _, s := range steps {
		var answers []string
		for _, sd := range sides {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			resp, err := pb.NewClusterClient(sd.conn).MemberAdd(ctx, s.req)
			cancel()
			answers = append(answers, describeMemberAdd(resp, err))
		}
		if answers[0] != answers[1] {
			t.Errorf("member add, %s:\n  etcd:  %s\n  detcd: %s", s.name, answers[0], answers[1])
		}
	}
}

// describeMemberAdd is what of a MemberAdd answer both servers must agree
// on: the error's code and message, or the new member (ids aside) and how
// many members there are.
func describeMemberAdd(resp *pb.MemberAddResponse, err error) string {
	if err != nil {
		st, _ := status.FromError(err)
		return fmt.Sprintf("error %s: %s", st.Code(), st.Message())
	}
	m := resp.GetMember()
	return fmt.Sprintf("added %q learner=%v, %d members", m.GetPeerURLs(), m.GetIsLearner(), len(resp.GetMembers()))
}
