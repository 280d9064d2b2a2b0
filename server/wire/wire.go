// Package wire is the format of the messages members exchange: one frame
// per message, a kind byte and its payload (raft's protobuf, or a
// core.PeerMessage as JSON). The server's peer transport writes and reads
// it on its HTTP streams, and the simulator's network carries every
// message through it too, so a simulated member receives what the wire
// delivers: a decoded copy, never the sender's own message.
package wire

import (
	"encoding/json"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
)

// Frame kinds (1 was a gRPC stream's hello).
const (
	Raft  byte = 2
	Peer  byte = 3
	Chunk byte = 4
)

// Frame is a frame of kind with payload.
func Frame(kind byte, payload []byte) []byte {
	b := make([]byte, 1+len(payload))
	b[0] = kind
	copy(b[1:], payload)
	return b
}

// EncodeRaft frames a raft message.
func EncodeRaft(m *raftpb.Message) ([]byte, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("wire: raft message: %w", err)
	}
	return Frame(Raft, b), nil
}

// EncodePeer frames a member-to-member message.
func EncodePeer(m *core.PeerMessage) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("wire: peer message: %w", err)
	}
	return Frame(Peer, b), nil
}

// Decode reads a raft or peer frame: one of the two messages is set.
// Frames of other kinds, and empty ones, give neither and no error: a
// newer member's frames an older one skips.
func Decode(b []byte) (*raftpb.Message, *core.PeerMessage, error) {
	if len(b) == 0 {
		return nil, nil, nil
	}
	switch b[0] {
	case Raft:
		m := &raftpb.Message{}
		if err := proto.Unmarshal(b[1:], m); err != nil {
			return nil, nil, fmt.Errorf("wire: bad raft message: %w", err)
		}
		return m, nil, nil
	case Peer:
		m := &core.PeerMessage{}
		if err := json.Unmarshal(b[1:], m); err != nil {
			return nil, nil, fmt.Errorf("wire: bad peer message: %w", err)
		}
		return nil, m, nil
	}
	return nil, nil, nil
}
