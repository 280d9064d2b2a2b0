package core_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/core/watch"
)

// The interaction tests' formatter: one line per message, as raft's
// DescribeMessage prints them, with entries decoded into the requests
// they carry.

func describeHardState(hs wal.HardState) string {
	s := fmt.Sprintf("Term:%d", hs.Term)
	if hs.Vote != 0 {
		s += fmt.Sprintf(" Vote:%d", hs.Vote)
	}
	return s + fmt.Sprintf(" Commit:%d", hs.Commit)
}

func describeMsg(m *raftpb.Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d->%d %s Term:%d Log:%d/%d", m.GetFrom(), m.GetTo(), m.GetType(), m.GetTerm(), m.GetLogTerm(), m.GetIndex())
	if m.GetReject() {
		fmt.Fprintf(&b, " Rejected (Hint: %d)", m.GetRejectHint())
	}
	if m.GetCommit() != 0 {
		fmt.Fprintf(&b, " Commit:%d", m.GetCommit())
	}
	if m.GetVote() != 0 {
		fmt.Fprintf(&b, " Vote:%d", m.GetVote())
	}
	if c := m.GetContext(); len(c) == 8 {
		// A heartbeat confirming read-only requests up to this position.
		fmt.Fprintf(&b, " ReadPos:%d", binary.LittleEndian.Uint64(c))
	}
	ents := m.GetEntries()
	switch t := m.GetType(); {
	case t == raftpb.MsgReadIndex || t == raftpb.MsgReadIndexResp:
		// The entry is the member's read round, not a log entry.
		for _, e := range ents {
			fmt.Fprintf(&b, " Round:%d", binary.BigEndian.Uint64(e.GetData()))
		}
	case len(ents) == 1:
		fmt.Fprintf(&b, " Entries:[%s]", describeRaftEntry(ents[0]))
	case len(ents) > 1:
		b.WriteString(" Entries:[")
		for _, e := range ents {
			b.WriteString("\n  " + describeRaftEntry(e))
		}
		b.WriteString("\n]")
	}
	if s := m.GetSnapshot(); s != nil && s.GetMetadata().GetIndex() != 0 {
		md := s.GetMetadata()
		fmt.Fprintf(&b, " Snapshot:%d/%d Voters:%v Learners:%v", md.GetTerm(), md.GetIndex(), md.GetConfState().GetVoters(), md.GetConfState().GetLearners())
	}
	return b.String()
}

func describeRaftEntry(e *raftpb.Entry) string {
	return describeEntry(e.GetType(), e.GetTerm(), e.GetIndex(), e.GetData())
}

// describeEntry prints term/index and the entry's content decoded.
func describeEntry(typ raftpb.EntryType, term, index uint64, data []byte) string {
	return fmt.Sprintf("%d/%d %s", term, index, describeData(typ, data))
}

func describeData(typ raftpb.EntryType, data []byte) string {
	switch typ {
	case raftpb.EntryConfChange:
		var cc raftpb.ConfChange
		if err := proto.Unmarshal(data, &cc); err != nil {
			return "undecodable conf change"
		}
		return describeConfChange(cc.AsV2())
	case raftpb.EntryConfChangeV2:
		var cc raftpb.ConfChangeV2
		if err := proto.Unmarshal(data, &cc); err != nil {
			return "undecodable conf change"
		}
		return describeConfChange(&cc)
	}
	if len(data) == 0 {
		return "(empty)"
	}
	var r pb.InternalRaftRequest
	if err := proto.Unmarshal(data, &r); err != nil {
		return fmt.Sprintf("undecodable %q", data)
	}
	return describeInternal(&r)
}

func describeConfChange(cc *raftpb.ConfChangeV2) string {
	var ctx struct {
		Member    core.Member `json:"member"`
		IsPromote bool        `json:"isPromote"`
	}
	_ = json.Unmarshal(cc.GetContext(), &ctx)
	var parts []string
	for _, c := range cc.GetChanges() {
		kind := map[raftpb.ConfChangeType]string{
			raftpb.ConfChangeAddNode: "add", raftpb.ConfChangeAddLearnerNode: "add-learner",
			raftpb.ConfChangeRemoveNode: "remove", raftpb.ConfChangeUpdateNode: "update",
		}[c.GetType()]
		if ctx.IsPromote {
			kind = "promote"
		}
		s := fmt.Sprintf("conf-change %s %d", kind, c.GetNodeId())
		if ctx.Member.Name != "" {
			s += " " + ctx.Member.Name
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func describeInternal(r *pb.InternalRaftRequest) string {
	switch {
	case r.Put != nil:
		return describePut(r.Put)
	case r.DeleteRange != nil:
		return describeDelete(r.DeleteRange)
	case r.Txn != nil:
		return describeTxn(r.Txn)
	case r.Compaction != nil:
		s := fmt.Sprintf("compact rev=%d", r.Compaction.Revision)
		if r.Compaction.Physical {
			s += " physical"
		}
		return s
	case r.LeaseGrant != nil:
		return fmt.Sprintf("lease-grant id=%d ttl=%d", r.LeaseGrant.ID, r.LeaseGrant.TTL)
	case r.LeaseRevoke != nil:
		return fmt.Sprintf("lease-revoke id=%d", r.LeaseRevoke.ID)
	case r.LeaseCheckpoint != nil:
		var cps []string
		for _, c := range r.LeaseCheckpoint.Checkpoints {
			cps = append(cps, fmt.Sprintf("id=%d remaining=%d", c.ID, c.Remaining_TTL))
		}
		return "lease-checkpoint " + strings.Join(cps, ", ")
	case r.Alarm != nil:
		return fmt.Sprintf("alarm %s %s member=%d", r.Alarm.Action, r.Alarm.Alarm, r.Alarm.MemberID)
	case r.ClusterMemberAttrSet != nil:
		return fmt.Sprintf("publish member %d name=%s", r.ClusterMemberAttrSet.Member_ID, r.ClusterMemberAttrSet.MemberAttributes.GetName())
	case r.ClusterVersionSet != nil:
		return "cluster-version " + r.ClusterVersionSet.Ver
	}
	return "unknown request"
}

func describeRange(key, end []byte) string {
	if len(end) == 0 {
		return string(key)
	}
	if len(end) == 1 && end[0] == 0 {
		return string(key) + ".."
	}
	return fmt.Sprintf("[%s,%s)", key, end)
}

func describePut(p *pb.PutRequest) string {
	s := fmt.Sprintf("put %s=%s", p.Key, p.Value)
	if p.Lease != 0 {
		s += fmt.Sprintf(" lease=%d", p.Lease)
	}
	if p.PrevKv {
		s += " prev-kv"
	}
	return s
}

func describeDelete(d *pb.DeleteRangeRequest) string {
	s := "delete " + describeRange(d.Key, d.RangeEnd)
	if d.PrevKv {
		s += " prev-kv"
	}
	return s
}

func describeRangeReq(r *pb.RangeRequest) string {
	s := "range " + describeRange(r.Key, r.RangeEnd)
	if r.Revision != 0 {
		s += fmt.Sprintf(" rev=%d", r.Revision)
	}
	if r.Serializable {
		s += " serializable"
	}
	return s
}

func describeTxn(t *pb.TxnRequest) string {
	var b strings.Builder
	b.WriteString("txn")
	for _, c := range t.Compare {
		target := strings.ToLower(c.Target.String())
		var v string
		switch c.Target {
		case pb.Compare_VALUE:
			v = string(c.GetValue())
		case pb.Compare_VERSION:
			v = fmt.Sprint(c.GetVersion())
		case pb.Compare_CREATE:
			v = fmt.Sprint(c.GetCreateRevision())
		case pb.Compare_MOD:
			v = fmt.Sprint(c.GetModRevision())
		case pb.Compare_LEASE:
			v = fmt.Sprint(c.GetLease())
		}
		op := map[pb.Compare_CompareResult]string{pb.Compare_EQUAL: "=", pb.Compare_NOT_EQUAL: "!=", pb.Compare_GREATER: ">", pb.Compare_LESS: "<"}[c.Result]
		fmt.Fprintf(&b, " if %s(%s)%s%s", target, describeRange(c.Key, c.RangeEnd), op, v)
	}
	ops := func(label string, ops []*pb.RequestOp) {
		var parts []string
		for _, o := range ops {
			switch {
			case o.GetRequestPut() != nil:
				parts = append(parts, describePut(o.GetRequestPut()))
			case o.GetRequestDeleteRange() != nil:
				parts = append(parts, describeDelete(o.GetRequestDeleteRange()))
			case o.GetRequestRange() != nil:
				parts = append(parts, describeRangeReq(o.GetRequestRange()))
			case o.GetRequestTxn() != nil:
				parts = append(parts, "("+describeTxn(o.GetRequestTxn())+")")
			}
		}
		fmt.Fprintf(&b, " %s [%s]", label, strings.Join(parts, "; "))
	}
	ops("then", t.Success)
	ops("else", t.Failure)
	return b.String()
}

func describePeer(m *core.PeerMessage) string {
	s := fmt.Sprintf("%d->%d Peer", m.From, m.To)
	switch {
	case m.KeepAlive != nil:
		s += fmt.Sprintf(" LeaseKeepAlive id=%d", m.KeepAlive.ID)
	case m.KeepAliveResp != nil:
		s += fmt.Sprintf(" LeaseKeepAliveResp id=%d ttl=%d", m.KeepAliveResp.ID, m.KeepAliveResp.TTL)
	case m.TimeToLive != nil:
		s += fmt.Sprintf(" LeaseTimeToLive id=%d", m.TimeToLive.ID)
	case m.TimeToLiveResp != nil:
		s += fmt.Sprintf(" LeaseTimeToLiveResp id=%d ttl=%d", m.TimeToLiveResp.ID, m.TimeToLiveResp.TTL)
	case m.MemberPromote != nil:
		s += fmt.Sprintf(" MemberPromote id=%d", m.MemberPromote.ID)
	case m.MemberPromoteResp != nil:
		s += " MemberPromoteResp"
	case m.MemberAdd != nil:
		s += fmt.Sprintf(" MemberAdd id=%d", m.NewMemberID)
	case m.MemberAddResp != nil:
		s += " MemberAddResp"
	case m.MemberRemove != nil:
		s += fmt.Sprintf(" MemberRemove id=%d", m.MemberRemove.ID)
	case m.MemberRemoveResp != nil:
		s += " MemberRemoveResp"
	case m.Removed:
		s += " Removed"
	case m.Seq == 0 && m.Err == "":
		s += " link heartbeat"
	}
	if m.Err != "" {
		s += " error: " + m.Err
	}
	if m.Seq != 0 {
		s += " seq=" + strconv.FormatUint(m.Seq, 10)
	}
	return s
}

func describeKV(kv *mvccpb.KeyValue) string {
	s := fmt.Sprintf("%s=%s (create=%d mod=%d ver=%d", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version)
	if kv.Lease != 0 {
		s += fmt.Sprintf(" lease=%d", kv.Lease)
	}
	return s + ")"
}

func describeKVs(kvs []*mvccpb.KeyValue) string {
	var parts []string
	for _, kv := range kvs {
		parts = append(parts, describeKV(kv))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func describeResponse(r core.Response) string {
	s := fmt.Sprintf("#%d ", r.ID)
	if r.Err != nil {
		return s + "error: " + r.Err.Error()
	}
	return s + describeMsgResp(r.Msg)
}

func describeMsgResp(msg proto.Message) string {
	switch m := msg.(type) {
	case *pb.PutResponse:
		s := fmt.Sprintf("put rev=%d", m.Header.GetRevision())
		if m.PrevKv != nil {
			s += " prev " + describeKV(m.PrevKv)
		}
		return s
	case *pb.RangeResponse:
		return fmt.Sprintf("range rev=%d count=%d %s", m.Header.GetRevision(), m.Count, describeKVs(m.Kvs))
	case *pb.DeleteRangeResponse:
		s := fmt.Sprintf("delete rev=%d deleted=%d", m.Header.GetRevision(), m.Deleted)
		if len(m.PrevKvs) > 0 {
			s += " prev " + describeKVs(m.PrevKvs)
		}
		return s
	case *pb.TxnResponse:
		var parts []string
		for _, o := range m.Responses {
			switch {
			case o.GetResponsePut() != nil:
				parts = append(parts, describeMsgResp(o.GetResponsePut()))
			case o.GetResponseRange() != nil:
				parts = append(parts, describeMsgResp(o.GetResponseRange()))
			case o.GetResponseDeleteRange() != nil:
				parts = append(parts, describeMsgResp(o.GetResponseDeleteRange()))
			case o.GetResponseTxn() != nil:
				parts = append(parts, "("+describeMsgResp(o.GetResponseTxn())+")")
			}
		}
		return fmt.Sprintf("txn rev=%d succeeded=%t [%s]", m.Header.GetRevision(), m.Succeeded, strings.Join(parts, "; "))
	case *pb.CompactionResponse:
		return fmt.Sprintf("compact rev=%d", m.Header.GetRevision())
	case *pb.LeaseGrantResponse:
		return fmt.Sprintf("lease-grant rev=%d id=%d ttl=%d", m.Header.GetRevision(), m.ID, m.TTL)
	case *pb.LeaseRevokeResponse:
		return fmt.Sprintf("lease-revoke rev=%d", m.Header.GetRevision())
	case *pb.LeaseKeepAliveResponse:
		return fmt.Sprintf("lease-keepalive id=%d ttl=%d", m.ID, m.TTL)
	case *pb.LeaseTimeToLiveResponse:
		s := fmt.Sprintf("lease-ttl id=%d ttl=%d granted=%d", m.ID, m.TTL, m.GrantedTTL)
		if len(m.Keys) > 0 {
			var keys []string
			for _, k := range m.Keys {
				keys = append(keys, string(k))
			}
			s += " keys=[" + strings.Join(keys, " ") + "]"
		}
		return s
	case *pb.MemberAddResponse:
		return fmt.Sprintf("member-add id=%d members=%s", m.Member.GetID(), describeMembers(m.Members))
	case *pb.MemberPromoteResponse:
		return "member-promote members=" + describeMembers(m.Members)
	case *pb.MemberRemoveResponse:
		return "member-remove members=" + describeMembers(m.Members)
	case *pb.MoveLeaderResponse:
		return "move-leader done"
	case *pb.MemberListResponse:
		return "member-list members=" + describeMembers(m.Members)
	case nil:
		return "ok"
	}
	return fmt.Sprintf("%T", msg)
}

func describeMembers(ms []*pb.Member) string {
	var parts []string
	for _, m := range ms {
		s := fmt.Sprintf("%d", m.ID)
		if m.Name != "" {
			s += ":" + m.Name
		}
		if m.IsLearner {
			s += "(learner)"
		}
		parts = append(parts, s)
	}
	return "(" + strings.Join(parts, " ") + ")"
}

func describeWatch(o watch.Out) string {
	r := o.Resp
	s := fmt.Sprintf("stream %d watch %d rev=%d", o.Stream, r.WatchId, r.Header.GetRevision())
	if r.Created {
		s += " created"
	}
	if r.Canceled {
		s += " canceled"
	}
	if r.CompactRevision != 0 {
		s += fmt.Sprintf(" compact-rev=%d", r.CompactRevision)
	}
	if r.CancelReason != "" {
		s += " reason: " + r.CancelReason
	}
	for _, ev := range r.Events {
		if ev.Type == mvccpb.DELETE {
			s += fmt.Sprintf("\n  DELETE %s (mod=%d)", ev.Kv.Key, ev.Kv.ModRevision)
		} else {
			s += fmt.Sprintf("\n  %s %s", ev.Type, describeKV(ev.Kv))
		}
		if ev.PrevKv != nil {
			s += " prev " + describeKV(ev.PrevKv)
		}
	}
	return s
}
