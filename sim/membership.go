package sim

import (
	"errors"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
)

// Membership changes, as an operator does them through the Cluster API:
// add a member as a learner and promote it once it has caught up, remove
// a voter, or replace one (remove, then add a fresh member).

const (
	votersMin  = 3
	membersMax = 5
)

func (w *World) live() []*member {
	var out []*member
	for _, m := range w.members {
		if !m.removed {
			out = append(out, m)
		}
	}
	return out
}

func (w *World) voters() int {
	n := 0
	for _, m := range w.members {
		if !m.removed && !m.learner {
			n++
		}
	}
	return n
}

// admin sends a membership request to a random live, up member.
func (w *World) admin(r core.Request, cb func(*core.Response)) {
	var ups []*member
	for _, m := range w.live() {
		if m.up {
			ups = append(ups, m)
		}
	}
	if len(ups) == 0 {
		cb(nil)
		return
	}
	m := ups[w.faults.rng.IntN(len(ups))]
	done := false
	finish := func(resp *core.Response) {
		if !done {
			done = true
			cb(resp)
		}
	}
	m.event(func() {
		w.callAs(m, w.rootLogin, r, func(resp core.Response) {
			w.after(w.settings.Net.LatencyMinUs, func() { finish(&resp) })
		})
	})()
	w.after(w.settings.ClientTimeoutUs*2, func() { finish(nil) })
}

// membershipChange picks a change that keeps the cluster within bounds.
func (f *faultState) membershipChange() {
	w := f.w
	if f.changing {
		return // one change at a time, as an operator would
	}
	live, voters := len(w.live()), w.voters()
	switch {
	case live < membersMax && (voters <= votersMin || f.rng.IntN(2) == 0):
		f.addMember()
	case voters > votersMin:
		f.removeMember(false)
	default:
		f.removeMember(true)
	}
}

func (f *faultState) addMember() {
	w := f.w
	f.changing = true
	id := uint64(len(w.members) + 1)
	url := fmt.Sprintf("http://m%d:2380", id)
	w.trace.logf(w.now, "membership: add m%d as a learner", id)
	w.admin(core.Request{MemberAdd: &pb.MemberAddRequest{PeerURLs: []string{url}, IsLearner: true}, NewMemberID: id}, func(resp *core.Response) {
		if resp == nil || resp.Err != nil {
			w.trace.logf(w.now, "membership: add m%d failed: %v", id, respErr(resp))
			f.changing = false
			return
		}
		var ms []core.Member
		for _, m := range resp.Msg.(*pb.MemberAddResponse).Members {
			ms = append(ms, core.Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, IsLearner: m.IsLearner})
		}
		m := newMember(w, int(id-1))
		m.joining, m.learner, m.initial = true, true, ms
		w.members = append(w.members, m)
		w.net.AddNode(m.id)
		if err := m.start(); err != nil {
			w.checks.fail("%v", err)
		}
		f.listMembers(m)
		f.promote(m, 0)
	})
}

// listMembers lists the members as an operator checks an addition
// (etcdctl member list, linearizable): the learner just added must be in
// the list, if the answer comes while nothing else can have changed the
// membership (it is still a learner, its promotion pending).
func (f *faultState) listMembers(added *member) {
	w := f.w
	w.admin(core.Request{MemberList: &pb.MemberListRequest{Linearizable: true}}, func(resp *core.Response) {
		if resp == nil || resp.Err != nil {
			w.trace.logf(w.now, "membership: member list: %v", respErr(resp))
			return
		}
		for _, m := range resp.Msg.(*pb.MemberListResponse).Members {
			if m.ID == added.id {
				return
			}
		}
		if f.changing && added.learner && !added.removed {
			w.checks.fail("membership: %s was added, but a linearizable member list leaves it out", added.name)
		}
	})
}

// promote retries until the learner has caught up.
func (f *faultState) promote(m *member, tries int) {
	w := f.w
	w.after(w.between(500_000, 2_000_000), func() {
		if m.removed {
			f.changing = false
			return
		}
		w.admin(core.Request{MemberPromote: &pb.MemberPromoteRequest{ID: m.id}}, func(resp *core.Response) {
			switch {
			case resp != nil && resp.Err == nil:
				m.learner = false
				f.changing = false
				w.trace.logf(w.now, "membership: %s promoted", m.name)
			case tries > 40:
				w.trace.logf(w.now, "membership: gave up promoting %s: %v", m.name, respErr(resp))
				f.changing = false
			default:
				w.trace.logf(w.now, "membership: promote %s: %v", m.name, respErr(resp))
				f.promote(m, tries+1)
			}
		})
	})
}

// removeMember removes a random voter; replace adds a fresh member after.
func (f *faultState) removeMember(replace bool) {
	w := f.w
	var cands []*member
	for _, m := range w.live() {
		if !m.learner {
			cands = append(cands, m)
		}
	}
	if len(cands) == 0 {
		return
	}
	m := cands[f.rng.IntN(len(cands))]
	// An operator removes the member whose data was destroyed first, as
	// etcd's recovery says (then adds a fresh one): taking a healthy voter
	// away instead could leave the dead one needed for a quorum.
	for _, c := range cands {
		if c.broken != 0 {
			m = c
		}
	}
	f.changing = true
	w.trace.logf(w.now, "membership: remove %s (replace %v)", m.name, replace)
	w.admin(core.Request{MemberRemove: &pb.MemberRemoveRequest{ID: m.id}}, func(resp *core.Response) {
		f.changing = false
		if resp == nil || resp.Err != nil {
			w.trace.logf(w.now, "membership: remove %s failed: %v", m.name, respErr(resp))
			return
		}
		w.retire(m)
		if replace {
			f.addMember()
		}
	})
}

// retire stops a removed member for good.
func (w *World) retire(m *member) {
	if m.removed {
		return
	}
	m.removed = true
	m.crash(false)
	w.trace.logf(w.now, "%s retired", m.name)
}

func respErr(r *core.Response) error {
	if r == nil {
		return errors.New("no answer")
	}
	return r.Err
}
