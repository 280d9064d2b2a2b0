package server

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/disk"
	"github.com/detcd/detcd/driver"
	"github.com/detcd/detcd/snapresume"
)

// PeerReceiver is the receive side of a member's peer transport on a loop
// of the caller's: the peer endpoints' handler (peerhttp.go), which takes
// message streams (peerrecv.go) and snapshot streams (snapshotrecv.go)
// and answers /version, /members and /members/hashkv, as the peer
// listeners serve it. The simulator runs it on its members, with
// requests that cross its network and bodies that park its tasks: the
// server's own decoding and checks of peer traffic, in virtual time.
type PeerReceiver struct {
	t *peerTransport
	h http.Handler // made once: a mux per request would cost more than its traffic
}

// PeerReceiverConfig is what a PeerReceiver runs on.
type PeerReceiverConfig struct {
	Log           *slog.Logger
	ID, ClusterID uint64
	// Instruments are the member's: the peer metrics count the traffic,
	// /version answers their cluster version.
	Instruments *Instruments
	// Loop runs what the streams take on the member's loop: Post and
	// PostPeer as driver.Loop's, and its waits.
	Loop   PeerLoop
	Driver *driver.Driver
	Disk   *disk.Disk
	// Partials keep the snapshots that broke off, to resume.
	Partials *driver.SnapshotPartials
	// Hashes answers /members/hashkv: the member's hash at a revision,
	// and its current revision.
	Hashes func(ctx context.Context, rev int64) (mvcc.KVHash, int64, error)
	// AwaitReleased waits, within a bound of the caller's, for each
	// channel to close: the snapshot transfers a new one cut keeping
	// their files.
	AwaitReleased func(ctx context.Context, released []<-chan struct{})
}

// NewPeerReceiver makes a member's receive side.
func NewPeerReceiver(cfg PeerReceiverConfig) *PeerReceiver {
	in := cfg.Instruments
	t := newPeerTransport(cfg.Log, cfg.ID, cfg.ClusterID, peerDialer{}, nil, in.metrics.peer, in.version)
	t.loop, t.drv, t.disk, t.partials, t.hashes = cfg.Loop, cfg.Driver, cfg.Disk, cfg.Partials, cfg.Hashes
	t.awaitReleased = cfg.AwaitReleased
	return &PeerReceiver{t: t, h: t.handler()}
}

// Handler serves the peer endpoints.
func (p *PeerReceiver) Handler() http.Handler { return p.h }

// SyncMembers takes the membership the loop applied, which the streams
// are checked against (a removed member's are refused) and /members
// answers; on the loop, after every turn, as the server's transport does.
func (p *PeerReceiver) SyncMembers() { _, _ = p.t.syncMembers() }

// PeerStreamPath is the endpoint of a member's stream of raft and
// member-to-member messages to another.
const PeerStreamPath = pathStream

// NewPeerStreamRequest is the request that opens a stream on path to
// member to at peerURL, from member from of clusterID, with body as its
// frames: the one the server's senders send.
func NewPeerStreamRequest(ctx context.Context, peerURL, path string, clusterID, from, to uint64, body io.Reader) (*http.Request, error) {
	return newPeerRequest(ctx, strings.TrimSuffix(peerURL, "/")+path, clusterID, from, to, body)
}

// newPeerRequest is a stream's POST to url.
func newPeerRequest(ctx context.Context, url string, clusterID, from, to uint64, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
	if err != nil {
		return nil, err
	}
	setPeerHeaders(req.Header, clusterID, from, to)
	return req, nil
}

// AppendPeerFrame appends a frame package wire made (wire.EncodeRaft,
// wire.EncodePeer) to b as a sender writes it on a stream, its length
// first.
func AppendPeerFrame(b, f []byte) []byte { return appendWireFrame(b, f) }

// PeerSnapshotPath is the endpoint of a resumable snapshot stream.
const PeerSnapshotPath = pathSnapshotResume

// SnapshotStreamSender is the sending end of a snapshot stream, the
// server's frames, for a sender of the caller's: out is the request's
// body, in the answer's. The simulator's paces the bytes over its
// network in virtual time.
type SnapshotStreamSender struct{ s peerStream }

// NewSnapshotStreamSender is a sending end writing to out and reading
// the receiver's frames from in.
func NewSnapshotStreamSender(out io.Writer, in io.Reader) *SnapshotStreamSender {
	return &SnapshotStreamSender{s: peerStream{in: bufio.NewReader(in), out: out, flush: func() error { return nil }}}
}

// SendMsg sends the stream's MsgSnap, its first frame.
func (s *SnapshotStreamSender) SendMsg(m *raftpb.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return s.s.send(frameRaft, b)
}

// Offer reads the receiver's offer: the chunks it holds of an earlier
// transfer; or its refusal.
func (s *SnapshotStreamSender) Offer() (snapresume.Offer, error) { return receiveOffer(&s.s) }

// SendContent sends the snapshot's content, skipping the chunks offer
// holds, then its sum.
func (s *SnapshotStreamSender) SendContent(snap core.OutgoingSnapshot, offer snapresume.Offer) (*driver.ResumeWriter, error) {
	return sendSnapshotContent(&s.s, snap, offer)
}

// Result reads the receiver's verdict.
func (s *SnapshotStreamSender) Result() error { return s.s.result() }
