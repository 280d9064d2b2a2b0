package server

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
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
	err := t.streamSnapshot(snap, urls)
	done(err)
	if err != nil {
		t.log.Warn("sending a snapshot failed", "to", fmt.Sprintf("%x", snap.To), "index", snap.Index, "err", err)
	} else {
		t.log.Info("sent a snapshot", "to", fmt.Sprintf("%x", snap.To), "index", snap.Index)
	}
	ok := err == nil
	_ = t.loop.Post(context.Background(), func() { t.drv.ReportSnapshot(snap.To, ok) })
}

func (t *peerTransport) streamSnapshot(snap core.OutgoingSnapshot, urls []string) error {
	conn, err := t.dialer.dial(urls)
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
	h, _ := json.Marshal(hello{ClusterID: t.clusterID, From: t.id, To: snap.To})
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
