package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
)

// The peer transport: members exchange raft messages, member-to-member
// messages and snapshots over gRPC streams on the peer URLs (and answer
// each other's HashKV for the corruption checks), with a codec
// that passes bytes through (frames are detcd's own). Every stream opens
// with a hello naming the cluster and the sender, so a member of another
// cluster is refused.

const (
	peerService = "detcd.peer.v1.Peer"
	// peerQueueMax bounds the messages waiting for one peer: a slow or
	// dead peer loses messages (raft retries) instead of holding the loop.
	peerQueueMax = 4096
	// snapshotChunkBytes is the size of a snapshot's content frames.
	snapshotChunkBytes = 1 << 20
	peerDialTimeout    = 3 * time.Second
	peerBackoffMax     = 2 * time.Second
)

// Frame kinds.
const (
	frameHello byte = iota + 1
	frameRaft
	framePeer
	frameChunk
)

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "detcdraw" }

type hello struct {
	ClusterID uint64 `json:"clusterID"`
	From      uint64 `json:"from"`
	To        uint64 `json:"to"`
}

func frame(kind byte, payload []byte) *[]byte {
	b := make([]byte, 1+len(payload))
	b[0] = kind
	copy(b[1:], payload)
	return &b
}

var peerDesc = grpc.ServiceDesc{
	ServiceName: peerService,
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{
		{StreamName: "Messages", Handler: func(srv any, ss grpc.ServerStream) error { return srv.(*Server).receiveMessages(ss) }, ClientStreams: true},
		{StreamName: "Snapshot", Handler: func(srv any, ss grpc.ServerStream) error { return srv.(*Server).receiveSnapshot(ss) }, ClientStreams: true},
	},
	Methods: []grpc.MethodDesc{
		{MethodName: "Cluster", Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			return srv.(*Server).clusterInfo()
		}},
		{MethodName: "HashKV", Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			return srv.(*Server).serveHashKV(ctx, in)
		}},
		probeMethod,
	},
}

// errClusterMismatch refuses a member of another cluster.
var errClusterMismatch = errors.New("cluster ID mismatch")

func (s *Server) checkHello(ss grpc.ServerStream) (hello, error) {
	var b []byte
	if err := ss.RecvMsg(&b); err != nil {
		return hello{}, err
	}
	var h hello
	if len(b) == 0 || b[0] != frameHello || json.Unmarshal(b[1:], &h) != nil {
		return h, errors.New("peer stream without a hello")
	}
	if h.ClusterID != s.clusterID.Load() {
		s.log.Warn("refusing a peer of another cluster", "peer", fmt.Sprintf("%x", h.From), "its-cluster", fmt.Sprintf("%x", h.ClusterID))
		return h, fmt.Errorf("%w: local %x, remote %x", errClusterMismatch, s.clusterID.Load(), h.ClusterID)
	}
	return h, nil
}

func (s *Server) receiveMessages(ss grpc.ServerStream) error {
	h, err := s.checkHello(ss)
	if err != nil {
		return err
	}
	from := hexID(h.From)
	for {
		var b []byte
		if err := ss.RecvMsg(&b); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			s.metrics.peer.recvFailed.WithLabelValues(from).Inc()
			return err
		}
		s.metrics.peer.received.WithLabelValues(from).Add(float64(len(b)))
		if len(b) == 0 {
			continue
		}
		// A loop that is behind drops what it cannot take, as a lossy
		// network would.
		switch b[0] {
		case frameRaft:
			m := &raftpb.Message{}
			if err := proto.Unmarshal(b[1:], m); err != nil {
				return fmt.Errorf("bad raft message: %w", err)
			}
			s.loop.PostPeer(func() { s.drv.Step(m) })
		case framePeer:
			m := &core.PeerMessage{}
			if err := json.Unmarshal(b[1:], m); err != nil {
				return fmt.Errorf("bad peer message: %w", err)
			}
			s.loop.PostPeer(func() { s.drv.StepPeer(m) })
		}
	}
}

func (s *Server) receiveSnapshot(ss grpc.ServerStream) error {
	h, err := s.checkHello(ss)
	if err != nil {
		return err
	}
	done := s.metrics.peer.snapshotStarted(&s.metrics.peer.snapReceive, hexID(h.From))
	err = s.receiveSnapshotBody(ss)
	done(err)
	return err
}

// receiveSnapshotBody takes a snapshot's message and content after the
// hello and hands them to the loop.
func (s *Server) receiveSnapshotBody(ss grpc.ServerStream) error {
	var b []byte
	if err := ss.RecvMsg(&b); err != nil {
		return err
	}
	m := &raftpb.Message{}
	if len(b) == 0 || b[0] != frameRaft || proto.Unmarshal(b[1:], m) != nil || m.GetType() != raftpb.MsgSnap {
		return errors.New("snapshot stream without its MsgSnap")
	}
	return s.receiveSnapshotContent(ss, m)
}

func (s *Server) clusterInfo() (*[]byte, error) {
	b, err := json.Marshal(clusterInfo{ClusterID: s.clusterID.Load(), Members: s.members()})
	return &b, err
}

type clusterInfo struct {
	ClusterID uint64        `json:"clusterID"`
	Members   []core.Member `json:"members"`
}

// members is the membership the loop last published.
func (s *Server) members() []core.Member {
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	return append([]core.Member(nil), s.memberList...)
}

// peer sends to one member, in order, over one stream it keeps open.
type peer struct {
	s    *Server
	id   uint64
	urls []string
	q    chan *[]byte
	stop chan struct{}
}

func (s *Server) dialPeer(urls []string) (*grpc.ClientConn, error) {
	u, err := url.Parse(urls[0])
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if secureURL(urls[0]) {
		creds = credentials.NewTLS(s.tls.peerClient)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallRecvMsgSize(1<<30), grpc.MaxCallSendMsgSize(1<<30)),
	}
	if u.Scheme == "unix" || u.Scheme == "unixs" {
		// The socket file a unix:// peer URL names, as listen opens it.
		return grpc.NewClient("unix:"+u.Host+u.Path, opts...)
	}
	if s.localAddr != nil {
		// etcd's SetMemberLocalAddr: peers see this member's connections
		// come from the address it advertises.
		d := net.Dialer{LocalAddr: s.localAddr, Timeout: peerDialTimeout}
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}))
	}
	return grpc.NewClient(u.Host, opts...)
}

func (p *peer) run() {
	backoff := 50 * time.Millisecond
	for {
		err := p.session()
		select {
		case <-p.stop:
			return
		default:
		}
		if err != nil {
			p.s.log.Debug("peer stream broke", "peer", fmt.Sprintf("%x", p.id), "err", err)
			p.s.unreachable(p.id)
		}
		select {
		case <-p.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, peerBackoffMax)
	}
}

// session sends messages over one stream until it breaks.
func (p *peer) session() error {
	conn, err := p.s.dialPeer(p.urls)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := conn.NewStream(ctx, &peerDesc.Streams[0], "/"+peerService+"/Messages")
	if err != nil {
		return err
	}
	h, _ := json.Marshal(hello{ClusterID: p.s.clusterID.Load(), From: p.s.node.ID(), To: p.id})
	if err := stream.SendMsg(frame(frameHello, h)); err != nil {
		return err
	}
	pm, local, to := &p.s.metrics.peer, hexID(p.s.node.ID()), hexID(p.id)
	pm.active.WithLabelValues(local, to).Inc()
	defer func() {
		pm.active.WithLabelValues(local, to).Dec()
		pm.disconnected.WithLabelValues(local, to).Inc()
	}()
	for {
		select {
		case <-p.stop:
			stream.CloseSend()
			return nil
		case f := <-p.q:
			if err := stream.SendMsg(f); err != nil {
				pm.sendFailed.WithLabelValues(to).Inc()
				return err
			}
			pm.sent.WithLabelValues(to).Add(float64(len(*f)))
		}
	}
}

// send queues a frame for a peer without ever blocking the loop.
func (p *peer) send(f *[]byte) bool {
	select {
	case p.q <- f:
		return true
	default:
		return false
	}
}

// peers keeps a sender for every other member of the applied membership.
type peers struct {
	byID    map[uint64]*peer
	version uint64
}

// syncPeers starts and stops senders as the membership changes; on the
// loop.
func (s *Server) syncPeers() {
	v := s.node.MembersVersion()
	if v == s.peers.version && s.peers.byID != nil {
		return
	}
	s.peers.version = v
	if s.peers.byID == nil {
		s.peers.byID = map[uint64]*peer{}
	}
	ms := s.node.Members()
	if len(ms) == 0 {
		// A member that joined (or restarted) has applied no membership
		// yet: it must still answer the leader, or it never catches up.
		ms = s.node.InitialMembers()
	}
	s.peersMu.Lock()
	s.memberList = ms
	s.peersMu.Unlock()
	want := map[uint64]core.Member{}
	for _, m := range ms {
		if m.ID != s.node.ID() {
			want[m.ID] = m
		}
	}
	for id, p := range s.peers.byID { //detcd:maporder-ok: each sender stops on its own
		if m, ok := want[id]; !ok || !sameURLs(m.PeerURLs, p.urls) {
			close(p.stop)
			delete(s.peers.byID, id)
		}
	}
	for id, m := range want { //detcd:maporder-ok: each sender starts on its own
		if _, ok := s.peers.byID[id]; ok || len(m.PeerURLs) == 0 {
			continue
		}
		p := &peer{s: s, id: id, urls: m.PeerURLs, q: make(chan *[]byte, peerQueueMax), stop: make(chan struct{})}
		s.peers.byID[id] = p
		s.log.Info("started HTTP pipelining with remote peer", "local-member-id", fmt.Sprintf("%x", s.node.ID()), "remote-peer-id", fmt.Sprintf("%x", id))
		go p.run()
		go p.probeRTT()
	}
}

func sameURLs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// transport is the server's side of driver.Transport: the peer senders.
type transport Server

// Send implements driver.Transport: it hands raft messages to their
// peers' senders.
func (t *transport) Send(ms []*raftpb.Message) {
	s := (*Server)(t)
	s.syncPeers()
	for _, m := range ms {
		p := s.peers.byID[m.GetTo()]
		if p == nil {
			continue
		}
		b, err := proto.Marshal(m)
		if err != nil {
			continue
		}
		if !p.send(frame(frameRaft, b)) {
			s.metrics.peer.sendFailed.WithLabelValues(hexID(m.GetTo())).Inc()
			s.node.ReportUnreachable(m.GetTo())
		}
	}
}

// SendPeer implements driver.Transport.
func (t *transport) SendPeer(ms []*core.PeerMessage) {
	s := (*Server)(t)
	s.syncPeers()
	for _, m := range ms {
		if p := s.peers.byID[m.To]; p != nil {
			if b, err := json.Marshal(m); err == nil {
				p.send(frame(framePeer, b))
			}
		}
	}
}

// SendSnapshot implements driver.Transport.
func (t *transport) SendSnapshot(snap core.OutgoingSnapshot) {
	s := (*Server)(t)
	s.syncPeers()
	if p := s.peers.byID[snap.To]; p != nil {
		go s.sendSnapshot(snap, p.urls)
	} else {
		s.drv.ReportSnapshot(snap.To, false)
	}
}

// sendSnapshot streams a snapshot to a peer off the loop and reports the
// outcome to the loop.
func (s *Server) sendSnapshot(snap core.OutgoingSnapshot, urls []string) {
	done := s.metrics.peer.snapshotStarted(&s.metrics.peer.snapSend, hexID(snap.To))
	err := s.streamSnapshot(snap, urls)
	done(err)
	if err != nil {
		s.log.Warn("sending a snapshot failed", "to", fmt.Sprintf("%x", snap.To), "index", snap.Index, "err", err)
	} else {
		s.log.Info("sent a snapshot", "to", fmt.Sprintf("%x", snap.To), "index", snap.Index)
	}
	ok := err == nil
	_ = s.loop.Post(context.Background(), func() { s.drv.ReportSnapshot(snap.To, ok) })
}

func (s *Server) streamSnapshot(snap core.OutgoingSnapshot, urls []string) error {
	conn, err := s.dialPeer(urls)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := conn.NewStream(ctx, &peerDesc.Streams[1], "/"+peerService+"/Snapshot")
	if err != nil {
		return err
	}
	h, _ := json.Marshal(hello{ClusterID: s.clusterID.Load(), From: s.node.ID(), To: snap.To})
	if err := stream.SendMsg(frame(frameHello, h)); err != nil {
		return err
	}
	mb, err := proto.Marshal(snap.Msg)
	if err != nil {
		return err
	}
	if err := stream.SendMsg(frame(frameRaft, mb)); err != nil {
		return err
	}
	if err := sendSnapshotContent(stream, snap); err != nil {
		return err
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	var ack []byte
	return stream.RecvMsg(&ack)
}

func (s *Server) unreachable(id uint64) {
	s.loop.PostPeer(func() { s.drv.ReportUnreachable(id) })
}

// fetchCluster asks the members in --initial-cluster for the cluster a
// joining member joins, as etcd does for --initial-cluster-state existing.
func (s *Server) fetchCluster(ctx context.Context, urls []string) (clusterInfo, error) {
	var last error
	for _, u := range urls {
		conn, err := s.dialPeer([]string{u})
		if err != nil {
			last = err
			continue
		}
		var out []byte
		cctx, cancel := context.WithTimeout(ctx, peerDialTimeout)
		err = conn.Invoke(cctx, "/"+peerService+"/Cluster", new([]byte), &out)
		cancel()
		conn.Close()
		if err != nil {
			last = err
			continue
		}
		var ci clusterInfo
		if err := json.Unmarshal(out, &ci); err != nil {
			last = err
			continue
		}
		return ci, nil
	}
	return clusterInfo{}, fmt.Errorf("could not get the cluster's members from any peer: %w", last)
}
