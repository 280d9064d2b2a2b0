package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/status"
)

// TestCorruptAlarmDiff raises the CORRUPT alarm through the Alarm API on a
// real etcd and on detcd and sends both the same requests: what etcd's
// corrupt applier refuses (writes, compactions, lease grants and revokes:
// DataLoss, "etcdserver: corrupt cluster") detcd must refuse alike, and
// what it serves (reads, alarms, status) detcd must serve; after the alarm
// is cleared, writes go through again.
func TestCorruptAlarmDiff(t *testing.T) {
	eaddr, _ := startEmbeddedEtcd(t, true)
	daddr, _ := startInProcDetcd(t, true)
	sides := []*side{dial(t, "etcd", eaddr, func() {}), dial(t, "detcd", daddr, func() {})}
	ctx := ctxT(t, 60*time.Second)
	type state struct {
		member uint64
		lease  int64
	}
	st := make([]state, len(sides))
	for i, s := range sides {
		defer s.conn.Close()
		r, err := s.kv.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("v")})
		if err != nil {
			t.Fatalf("%s: put: %v", s.name, err)
		}
		g, err := pb.NewLeaseClient(s.conn).LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 600})
		if err != nil {
			t.Fatalf("%s: lease grant: %v", s.name, err)
		}
		st[i] = state{member: r.Header.MemberId, lease: g.ID}
	}
	alarm := func(s *side, st state, action pb.AlarmRequest_AlarmAction) (any, error) {
		r, err := s.mt.Alarm(ctx, &pb.AlarmRequest{Action: action, MemberID: st.member, Alarm: pb.AlarmType_CORRUPT})
		if err != nil {
			return nil, err
		}
		return len(r.Alarms), nil
	}
	put := func(s *side, _ state) (any, error) {
		_, err := s.kv.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("w")})
		return nil, err
	}
	steps := []struct {
		name string
		do   func(*side, state) (any, error)
	}{
		{"activate", func(s *side, st state) (any, error) { return alarm(s, st, pb.AlarmRequest_ACTIVATE) }},
		{"put", put},
		{"delete", func(s *side, _ state) (any, error) {
			_, err := s.kv.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte("k")})
			return nil, err
		}},
		{"write txn", func(s *side, _ state) (any, error) {
			_, err := s.kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("t")}}}}})
			return nil, err
		}},
		{"read txn", func(s *side, _ state) (any, error) {
			r, err := s.kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k")}}}}})
			if err != nil {
				return nil, err
			}
			return r.Succeeded, nil
		}},
		{"range", func(s *side, _ state) (any, error) {
			r, err := s.kv.Range(ctx, &pb.RangeRequest{Key: []byte("k")})
			if err != nil {
				return nil, err
			}
			return string(r.Kvs[0].Value), nil
		}},
		{"compact", func(s *side, _ state) (any, error) {
			_, err := s.kv.Compact(ctx, &pb.CompactionRequest{Revision: 1})
			return nil, err
		}},
		{"lease grant", func(s *side, _ state) (any, error) {
			_, err := pb.NewLeaseClient(s.conn).LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 60})
			return nil, err
		}},
		{"lease revoke", func(s *side, st state) (any, error) {
			_, err := pb.NewLeaseClient(s.conn).LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: st.lease})
			return nil, err
		}},
		{"alarm list", func(s *side, st state) (any, error) { return alarm(s, st, pb.AlarmRequest_GET) }},
		{"status", func(s *side, st state) (any, error) {
			r, err := s.mt.Status(ctx, &pb.StatusRequest{})
			if err != nil {
				return nil, err
			}
			// The member ids differ: compare how many errors and whether
			// the alarm is among them.
			return fmt.Sprintf("%d errors, CORRUPT %v", len(r.Errors), strings.Contains(strings.Join(r.Errors, ";"), "alarm:CORRUPT")), nil
		}},
		{"deactivate", func(s *side, st state) (any, error) { return alarm(s, st, pb.AlarmRequest_DEACTIVATE) }},
		{"put after deactivate", put},
	}
	for _, step := range steps {
		var got []string
		for i, s := range sides {
			out, err := step.do(s, st[i])
			got = append(got, fmt.Sprintf("%v %v %q", out, status.Code(err), status.Convert(err).Message()))
		}
		t.Logf("%s: etcd %s, detcd %s", step.name, got[0], got[1])
		if got[0] != got[1] {
			t.Errorf("%s: etcd answers %s, detcd %s", step.name, got[0], got[1])
		}
	}
}
