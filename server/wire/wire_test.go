package wire

import (
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
)

func TestRoundTrip(t *testing.T) {
	typ, term, idx := raftpb.MessageType_MsgApp, uint64(3), uint64(7)
	rm := &raftpb.Message{Type: &typ, Term: &term, Index: &idx, Entries: []*raftpb.Entry{{Data: []byte("x")}}}
	b, err := EncodeRaft(rm)
	if err != nil {
		t.Fatal(err)
	}
	got, peer, err := Decode(b)
	if err != nil || peer != nil || !proto.Equal(got, rm) || got == rm {
		t.Fatalf("raft round trip: %v %v %v", got, peer, err)
	}
	pm := &core.PeerMessage{From: 1, To: 2, Seq: 9}
	b, err = EncodePeer(pm)
	if err != nil {
		t.Fatal(err)
	}
	raft, gotPeer, err := Decode(b)
	if err != nil || raft != nil || gotPeer == nil || gotPeer.From != 1 || gotPeer.To != 2 || gotPeer.Seq != 9 {
		t.Fatalf("peer round trip: %v %+v %v", raft, gotPeer, err)
	}
}

func TestDecodeRefusesAndSkips(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		err  string
	}{
		{"empty", nil, ""},
		{"a snapshot chunk is not a message", Frame(Chunk, []byte("{}")), ""},
		{"unknown kind", []byte{99, 1, 2}, ""},
		{"bad raft", Frame(Raft, []byte{0xff, 0xff}), "bad raft message"},
		{"bad peer", Frame(Peer, []byte("{")), "bad peer message"},
	} {
		raft, peer, err := Decode(tc.in)
		switch {
		case tc.err == "" && (err != nil || raft != nil || peer != nil):
			t.Errorf("%s: got %v %v %v, want nothing", tc.name, raft, peer, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
		}
	}
}
