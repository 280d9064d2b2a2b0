package core

import (
	"fmt"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func app(to, term, index, logTerm, commit uint64, ents ...uint64) *raftpb.Message {
	m := &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: new(uint64(1)), To: new(to), Term: new(term),
		Index: new(index), LogTerm: new(logTerm), Commit: new(commit)}
	for _, i := range ents {
		m.Entries = append(m.Entries, &raftpb.Entry{Index: new(i), Term: new(term), Data: []byte("x")})
	}
	return m
}

func appResp(to, term, index uint64, reject bool) *raftpb.Message {
	return &raftpb.Message{Type: raftpb.MsgAppResp.Enum(), From: new(uint64(2)), To: new(to), Term: new(term),
		Index: new(index), Reject: new(reject)}
}

func describe(ms []*raftpb.Message) string {
	var b []string
	for _, m := range ms {
		var ents []string
		for _, e := range m.GetEntries() {
			ents = append(ents, fmt.Sprint(e.GetIndex()))
		}
		s := fmt.Sprintf("%s to=%d term=%d index=%d", m.GetType(), m.GetTo(), m.GetTerm(), m.GetIndex())
		if m.GetType() == raftpb.MsgApp {
			s += fmt.Sprintf(" logterm=%d commit=%d ents=[%s]", m.GetLogTerm(), m.GetCommit(), strings.Join(ents, " "))
		}
		if m.GetReject() {
			s += " reject"
		}
		b = append(b, s)
	}
	return strings.Join(b, "\n")
}

func TestCoalesceMessages(t *testing.T) {
	hb := &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: new(uint64(1)), To: new(uint64(2)), Term: new(uint64(2))}
	for _, tc := range []struct {
		name string
		in   []*raftpb.Message
		want string
	}{{
		name: "a proposal's append, the next one's and a commit advance become one per follower",
		in: []*raftpb.Message{app(2, 2, 5, 2, 5, 6), app(3, 2, 5, 2, 5, 6), app(2, 2, 6, 2, 6, 7),
			app(3, 2, 6, 2, 6, 7), app(2, 2, 7, 2, 7), app(3, 2, 7, 2, 7)},
		want: "MsgApp to=2 term=2 index=5 logterm=2 commit=7 ents=[6 7]\nMsgApp to=3 term=2 index=5 logterm=2 commit=7 ents=[6 7]",
	}, {
		name: "an empty append then entries",
		in:   []*raftpb.Message{app(2, 2, 7, 2, 7), app(2, 2, 7, 2, 7, 8)},
		want: "MsgApp to=2 term=2 index=7 logterm=2 commit=7 ents=[8]",
	}, {
		name: "entries that do not continue (a resend from lower) stay apart",
		in:   []*raftpb.Message{app(2, 2, 5, 2, 5, 6), app(2, 2, 3, 2, 5, 4)},
		want: "MsgApp to=2 term=2 index=5 logterm=2 commit=5 ents=[6]\nMsgApp to=2 term=2 index=3 logterm=2 commit=5 ents=[4]",
	}, {
		name: "a heartbeat in between keeps its place",
		in:   []*raftpb.Message{app(2, 2, 5, 2, 5, 6), hb, app(2, 2, 6, 2, 6, 7)},
		want: "MsgApp to=2 term=2 index=5 logterm=2 commit=5 ents=[6]\nMsgHeartbeat to=2 term=2 index=0\nMsgApp to=2 term=2 index=6 logterm=2 commit=6 ents=[7]",
	}, {
		name: "another term stays apart",
		in:   []*raftpb.Message{app(2, 2, 5, 2, 5, 6), app(2, 3, 6, 2, 6, 7)},
		want: "MsgApp to=2 term=2 index=5 logterm=2 commit=5 ents=[6]\nMsgApp to=2 term=3 index=6 logterm=2 commit=6 ents=[7]",
	}, {
		name: "answers to appends: the highest index says it all",
		in:   []*raftpb.Message{appResp(1, 2, 5, false), appResp(1, 2, 9, false), appResp(1, 2, 7, false)},
		want: "MsgAppResp to=1 term=2 index=9",
	}, {
		name: "a rejection is never merged",
		in:   []*raftpb.Message{appResp(1, 2, 5, false), appResp(1, 2, 4, true), appResp(1, 2, 9, false)},
		want: "MsgAppResp to=1 term=2 index=5\nMsgAppResp to=1 term=2 index=4 reject\nMsgAppResp to=1 term=2 index=9",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := describe(coalesceMessages(tc.in))
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// A merge must not write into the array behind the first message's
// entries: raft's log may share it.
func TestCoalesceLeavesEntriesArrays(t *testing.T) {
	a := app(2, 2, 5, 2, 5, 6)
	spare := &raftpb.Entry{Index: new(uint64(99))}
	backing := append(make([]*raftpb.Entry, 0, 4), a.Entries[0], spare)
	a.Entries = backing[:1]
	out := coalesceMessages([]*raftpb.Message{a, app(2, 2, 6, 2, 6, 7)})
	if len(out) != 1 || len(out[0].GetEntries()) != 2 {
		t.Fatalf("not merged: %s", describe(out))
	}
	if backing[:2][1] != spare {
		t.Fatalf("the merge wrote into the first message's entries array")
	}
}

// Appends stop growing at raft's message size limit.
func TestCoalesceSizeLimit(t *testing.T) {
	big := func(m *raftpb.Message) *raftpb.Message {
		m.Entries[0].Data = make([]byte, maxMsgBytes/2+1)
		return m
	}
	out := coalesceMessages([]*raftpb.Message{big(app(2, 2, 5, 2, 5, 6)), big(app(2, 2, 6, 2, 6, 7)), app(2, 2, 7, 2, 7)})
	if got, want := describe(out), "MsgApp to=2 term=2 index=5 logterm=2 commit=5 ents=[6]\nMsgApp to=2 term=2 index=6 logterm=2 commit=7 ents=[7]"; got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
