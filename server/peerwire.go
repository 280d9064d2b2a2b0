package server

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/server/wire"
)

// The peer wire: members talk HTTP/1.1 on the peer URLs, as etcd's do
// (never HTTP/2: etcd's peers do not, and etcd's e2e tests read a
// member's HTTP/2 header log for its clients' requests alone). The
// endpoints are etcd's where an operator or a tool reaches them (GET
// /version, GET /members, GET /members/hashkv, /raft/probing); raft
// traffic has detcd's own (peerhttp.go):
//
//   - POST /raft/stream: one sender's stream of raft and member-to-member
//     messages, in the request body, for as long as the sender keeps it;
//   - POST /raft/snapshot/resume: a snapshot, resumable (snapshotrecv.go);
//     POST /raft/snapshot: one from zero, for a member without the first.
//
// A stream is a sequence of frames both ways (package wire's kinds, each
// behind its u32 length), in a chunked body; the receiver answers 200 at
// once, so the sender knows it took the stream, and then reads the body
// while it writes its own frames (full duplex). Every request names the
// cluster and the sender in etcd's headers, so a member of another
// cluster is refused (412, as etcd's), and a removed member is told so
// (410, as etcd's: it stops).

const (
	// peerQueueMax bounds the messages waiting for one peer: a slow or
	// dead peer loses messages (raft retries) instead of holding the loop.
	peerQueueMax    = 4096
	peerDialTimeout = 3 * time.Second
	peerBackoffMax  = 2 * time.Second
	// peerFrameBytesMax bounds one frame between members (a snapshot's
	// frames are smaller; a raft message may carry many entries).
	peerFrameBytesMax = 1 << 30
	// peerBatchBytesMax bounds the frames a sender writes at once, when
	// several are waiting.
	peerBatchBytesMax = 1 << 20
	// peerReadHeaderTimeout bounds how long a peer connection may take
	// to send a request's headers.
	peerReadHeaderTimeout = 10 * time.Second
)

// The peer endpoints.
const (
	pathStream         = "/raft/stream"
	pathSnapshot       = "/raft/snapshot"
	pathSnapshotResume = "/raft/snapshot/resume"
	pathProbing        = "/raft/probing"
	pathMembers        = "/members"
	pathHashKV         = "/members/hashkv"
	pathVersion        = "/version"
)

// etcd's peer headers, ids in hexadecimal.
const (
	headerClusterID = "X-Etcd-Cluster-ID"
	headerFrom      = "X-Server-From"
	headerTo        = "X-Raft-To"
	headerVersion   = "X-Server-Version"
)

// Frame kinds (package wire holds the format).
const (
	frameRaft  = wire.Raft
	frameChunk = wire.Chunk
)

// errClusterMismatch refuses a member of another cluster (etcd's text).
var errClusterMismatch = errors.New("cluster ID mismatch")

// errToMismatch refuses a stream meant for another member (etcd's text).
var errToMismatch = errors.New("to field mismatch")

// errRemovedMember refuses a member removed from the cluster (etcd's
// text, with 410 Gone): it stops once it hears it.
var errRemovedMember = errors.New("removed member")

// clusterInfo is what a member answers GET /members with: the cluster a
// joining member joins.
type clusterInfo struct {
	ClusterID uint64
	Members   []core.Member
}

// setPeerHeaders names the cluster, the sender and the receiver (0: any).
func setPeerHeaders(h http.Header, clusterID, from, to uint64) {
	h.Set(headerClusterID, hexID(clusterID))
	h.Set(headerFrom, hexID(from))
	h.Set(headerVersion, Version)
	if to != 0 {
		h.Set(headerTo, hexID(to))
	}
}

// peerIDHeader reads a hexadecimal member id header.
func peerIDHeader(h http.Header, name string) (uint64, error) {
	id, err := strconv.ParseUint(h.Get(name), 16, 64)
	if err != nil {
		return 0, fmt.Errorf("bad %s header %q: %w", name, h.Get(name), err)
	}
	return id, nil
}

// writeFrame writes a frame, its length first, in one write.
func writeFrame(w io.Writer, kind byte, payload []byte) error {
	// The head and the payload go apart: a snapshot's 1 MiB chunks are
	// never copied into a frame of their own, which on a leader with a
	// large heap would pile up as garbage for as long as the GC lets it.
	var head [frameHeadBytes]byte
	binary.BigEndian.PutUint32(head[:], uint32(1+len(payload)))
	head[4] = kind
	if _, err := w.Write(head[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// frameHeadBytes is a frame's length and kind.
const frameHeadBytes = 4 + 1

// appendFrame appends a frame of kind with payload to b.
func appendFrame(b []byte, kind byte, payload []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(1+len(payload)))
	b = append(b, kind)
	return append(b, payload...)
}

// appendWireFrame appends a frame package wire made (its kind first).
func appendWireFrame(b, f []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
	return append(b, f...)
}

// readFrame reads a frame (its kind first): io.EOF at the end of the
// stream, between frames; an error for a stream that ends inside one.
func readFrame(r *bufio.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > peerFrameBytesMax {
		return nil, fmt.Errorf("peer frame of %d bytes, over the limit of %d", size, peerFrameBytesMax)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, noEOF(err)
	}
	return b, nil
}

// noEOF turns the end of a stream inside a frame into an error.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
