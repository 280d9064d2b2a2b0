package core

import (
	"cmp"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// alarms are the raised alarms, sorted by member and type so that every
// listing is deterministic.
type alarms struct{ list []*pb.AlarmMember }

func alarmCmp(a *pb.AlarmMember, member uint64, t pb.AlarmType) int {
	return cmp.Or(cmp.Compare(a.MemberID, member), cmp.Compare(a.Alarm, t))
}

func (as *alarms) find(member uint64, t pb.AlarmType) (int, bool) {
	return slices.BinarySearchFunc(as.list, member, func(a *pb.AlarmMember, m uint64) int { return alarmCmp(a, m, t) })
}

func (as *alarms) has(member uint64, t pb.AlarmType) bool {
	_, ok := as.find(member, t)
	return ok
}

func (as *alarms) noSpace() bool { return as.any(pb.AlarmType_NOSPACE) }

// corrupt reports whether a CORRUPT alarm is raised for any member: as in
// etcd, one member's corruption fences the whole cluster.
func (as *alarms) corrupt() bool { return as.any(pb.AlarmType_CORRUPT) }

func (as *alarms) any(t pb.AlarmType) bool {
	for _, a := range as.list {
		if a.Alarm == t {
			return true
		}
	}
	return false
}

// refusedWhenCorrupt reports whether etcd's corrupt applier refuses the
// request: every key-space write, compaction, and lease grant and revoke.
// Alarms (so that CORRUPT can be cleared), auth, membership and lease
// checkpoints still apply. Reads, which etcd's applier refuses too, never
// go through the log: they are served.
func refusedWhenCorrupt(r *pb.InternalRaftRequest) bool {
	return r.Put != nil || r.DeleteRange != nil || r.Txn != nil || r.Compaction != nil ||
		r.LeaseGrant != nil || r.LeaseRevoke != nil
}

// activate raises an alarm and returns it (the existing one if it was up).
func (as *alarms) activate(member uint64, t pb.AlarmType) *pb.AlarmMember {
	i, ok := as.find(member, t)
	if ok {
		return as.list[i]
	}
	a := &pb.AlarmMember{MemberID: member, Alarm: t}
	as.list = slices.Insert(as.list, i, a)
	return a
}

// deactivate clears an alarm and returns it, or nil if it was not up.
func (as *alarms) deactivate(member uint64, t pb.AlarmType) *pb.AlarmMember {
	i, ok := as.find(member, t)
	if !ok {
		return nil
	}
	a := as.list[i]
	as.list = slices.Delete(as.list, i, i+1)
	return a
}

func (as *alarms) get(t pb.AlarmType) []*pb.AlarmMember {
	var out []*pb.AlarmMember
	for _, a := range as.list {
		if t == pb.AlarmType_NONE || a.Alarm == t {
			out = append(out, &pb.AlarmMember{MemberID: a.MemberID, Alarm: a.Alarm})
		}
	}
	return out
}

// applyAlarm mirrors etcd: GET lists, ACTIVATE and DEACTIVATE answer with
// the alarm they touched.
func (n *Node) applyAlarm(r *pb.AlarmRequest) *pb.AlarmResponse {
	resp := &pb.AlarmResponse{Header: n.header(0)}
	switch r.Action {
	case pb.AlarmRequest_GET:
		resp.Alarms = n.st.alarms.get(r.Alarm)
	case pb.AlarmRequest_ACTIVATE:
		if r.Alarm != pb.AlarmType_NONE {
			a := n.st.alarms.activate(r.MemberID, r.Alarm)
			resp.Alarms = append(resp.Alarms, &pb.AlarmMember{MemberID: a.MemberID, Alarm: a.Alarm})
			n.log.Warn("alarm raised", "member", r.MemberID, "alarm", r.Alarm.String())
		}
	case pb.AlarmRequest_DEACTIVATE:
		if a := n.st.alarms.deactivate(r.MemberID, r.Alarm); a != nil {
			resp.Alarms = append(resp.Alarms, a)
			n.log.Info("alarm cleared", "member", r.MemberID, "alarm", r.Alarm.String())
		}
	}
	return resp
}
