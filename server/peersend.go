package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/driver"
	"github.com/detcd/detcd/snapresume"
)

// peer sends to one member, in order, over one stream it keeps open.
type peer struct {
	t    *peerTransport
	id   uint64
	urls []string
	q    chan *[]byte
	stop chan struct{}
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
			p.t.log.Debug("peer stream broke", "peer", fmt.Sprintf("%x", p.id), "err", err)
			p.t.unreachable(p.id)
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
	conn, err := p.t.dialer.dial(p.urls)
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
	h, _ := json.Marshal(hello{ClusterID: p.t.clusterID, From: p.t.id, To: p.id})
	if err := stream.SendMsg(frame(frameHello, h)); err != nil {
		return err
	}
	pm, local, to := p.t.metrics, hexID(p.t.id), hexID(p.id)
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

// unreachable tells the loop a peer's stream broke.
func (t *peerTransport) unreachable(id uint64) {
	t.loop.PostPeer(func() { t.drv.ReportUnreachable(id) })
}

// sendSnapshot streams a snapshot to a peer off the loop and reports the
// outcome to the loop.
func (t *peerTransport) sendSnapshot(snap core.OutgoingSnapshot, urls []string) {
	done := t.metrics.snapshotStarted(&t.metrics.snapSend, hexID(snap.To))
	w, err := t.streamSnapshot(snap, urls)
	done(err)
	to := fmt.Sprintf("%x", snap.To)
	if err != nil {
		t.log.Warn("sending a snapshot failed", "to", to, "index", snap.Index, "err", err)
	} else {
		t.log.Info("sent a snapshot", "to", to, "index", snap.Index, "bytes-sent", w.SentBytes, "bytes-held", w.HeldBytes)
	}
	ok := err == nil
	_ = t.loop.Post(context.Background(), func() { t.drv.ReportSnapshot(snap.To, ok) })
}

// streamSnapshot streams a snapshot on SnapshotResume, skipping what the
// peer holds, or on Snapshot, from zero, to a peer without it.
func (t *peerTransport) streamSnapshot(snap core.OutgoingSnapshot, urls []string) (*driver.ResumeWriter, error) {
	conn, err := t.dialer.dial(urls)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var offer snapresume.Offer
	stream, err := t.openSnapshotStream(ctx, conn, snap, &peerDesc.Streams[2])
	if err == nil {
		offer, err = receiveOffer(stream)
	}
	if status.Code(err) == codes.Unimplemented {
		stream, err = t.openSnapshotStream(ctx, conn, snap, &peerDesc.Streams[1])
	}
	if err != nil {
		return nil, err
	}
	w, err := sendSnapshotContent(stream, snap, offer)
	if err != nil {
		return w, err
	}
	if err := stream.CloseSend(); err != nil {
		return w, err
	}
	var ack []byte
	return w, stream.RecvMsg(&ack)
}

// openSnapshotStream opens a snapshot stream of method desc and sends the
// hello and the MsgSnap.
func (t *peerTransport) openSnapshotStream(ctx context.Context, conn *grpc.ClientConn, snap core.OutgoingSnapshot, desc *grpc.StreamDesc) (grpc.ClientStream, error) {
	stream, err := conn.NewStream(ctx, desc, "/"+peerService+"/"+desc.StreamName)
	if err != nil {
		return nil, err
	}
	h, _ := json.Marshal(hello{ClusterID: t.clusterID, From: t.id, To: snap.To})
	mb, err := proto.Marshal(snap.Msg)
	if err != nil {
		return nil, err
	}
	for _, f := range []*[]byte{frame(frameHello, h), frame(frameRaft, mb)} {
		if err := stream.SendMsg(f); errors.Is(err, io.EOF) {
			// The receiver ended the stream: its status says why (a
			// member without the method says Unimplemented).
			var b []byte
			if err := stream.RecvMsg(&b); err != nil {
				return nil, err
			}
			return nil, errors.New("snapshot stream ended by the receiver")
		} else if err != nil {
			return nil, err
		}
	}
	return stream, nil
}

// receiveOffer reads what the receiver holds of an earlier transfer.
func receiveOffer(stream grpc.ClientStream) (snapresume.Offer, error) {
	var b []byte
	if err := stream.RecvMsg(&b); err != nil {
		return snapresume.Offer{}, err
	}
	if len(b) == 0 || b[0] != frameOffer {
		return snapresume.Offer{}, errors.New("snapshot stream: the receiver did not answer with its offer")
	}
	return snapresume.ParseOffer(b[1:])
}
