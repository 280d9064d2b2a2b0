package sim

import (
	"fmt"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// TestAppendTime: the trace's time prefix is fmt's, digit for digit, so
// recorded trace hashes do not move.
func TestAppendTime(t *testing.T) {
	for _, now := range []int64{0, 1, 999_999, 1_000_000, 1_234_567, 99_999_999_999, 100_000_000_000, 123_456_789_012_345, -1, -1_500_000} {
		want := fmt.Sprintf("%5d.%06d ", now/1_000_000, now%1_000_000)
		if got := string(appendTime([]byte("x"), now)); got != "x"+want {
			t.Errorf("appendTime(%d) = %q, want %q", now, got, "x"+want)
		}
	}
}

// TestDescribe: a raft message's trace text is fmt's, so recorded trace
// hashes do not move.
func TestDescribe(t *testing.T) {
	for _, m := range []*raftpb.Message{
		{},
		{Type: raftpb.MsgApp.Enum(), Term: ptr(uint64(3)), Index: ptr(uint64(17)), LogTerm: ptr(uint64(2)), Commit: ptr(uint64(16)), Entries: make([]*raftpb.Entry, 2)},
		{Type: raftpb.MsgAppResp.Enum(), Term: ptr(uint64(3)), Index: ptr(uint64(17)), Reject: ptr(true)},
		{Type: raftpb.MessageType(99).Enum()},
	} {
		want := fmt.Sprintf("%s t%d i%d lt%d c%d", m.GetType(), m.GetTerm(), m.GetIndex(), m.GetLogTerm(), m.GetCommit())
		if n := len(m.GetEntries()); n > 0 {
			want += fmt.Sprintf(" ents%d", n)
		}
		if m.GetReject() {
			want += " reject"
		}
		if got := describe(m); got != want {
			t.Errorf("describe = %q, want %q", got, want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
