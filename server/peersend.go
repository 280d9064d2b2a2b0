package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

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
		if isStatus(err, http.StatusGone) {
			p.t.removedBy(p.id)
		} else if err != nil {
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

// session sends messages over one stream until it breaks or the peer
// ends it.
func (p *peer) session() error {
	// A stop ends the stream even while a write waits on the network.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	c, err := p.t.dialer.openStream(ctx, p.urls[0], pathStream, p.t.clusterID, p.t.id, p.id)
	if err != nil {
		return err
	}
	defer c.close()
	ended := make(chan struct{})
	go func() {
		// The receiver says nothing on a message stream: its answer
		// ends when the stream does, from its side.
		_, _ = io.Copy(io.Discard, c.resp.Body)
		close(ended)
	}()
	pm, local, to := p.t.metrics, hexID(p.t.id), hexID(p.id)
	pm.active.WithLabelValues(local, to).Inc()
	defer func() {
		pm.active.WithLabelValues(local, to).Dec()
		pm.disconnected.WithLabelValues(local, to).Inc()
	}()
	var batch []byte
	for {
		select {
		case <-p.stop:
			return c.closeSend()
		case <-ended:
			return errors.New("the peer ended the stream")
		case f := <-p.q:
			batch = p.fill(appendWireFrame(batch[:0], *f))
			if _, err := c.body.Write(batch); err != nil {
				pm.sendFailed.WithLabelValues(to).Inc()
				return err
			}
			pm.sent.WithLabelValues(to).Add(float64(len(batch)))
			if cap(batch) > peerBatchBytesMax {
				batch = nil // a large message's buffer is not kept
			}
		}
	}
}

// fill appends the frames waiting, up to peerBatchBytesMax, to batch:
// one write sends them all.
func (p *peer) fill(batch []byte) []byte {
	for len(batch) < peerBatchBytesMax {
		select {
		case f := <-p.q:
			batch = appendWireFrame(batch, *f)
		default:
			return batch
		}
	}
	return batch
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
	t.loop.PostPeer(func() { t.drv.ReportPeerLost(id) })
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

// streamSnapshot streams a snapshot on pathSnapshotResume, skipping
// what the peer holds, or on pathSnapshot, from zero, to a peer without
// it.
func (t *peerTransport) streamSnapshot(snap core.OutgoingSnapshot, urls []string) (*driver.ResumeWriter, error) {
	var offer snapresume.Offer
	c, err := t.openSnapshotStream(urls[0], snap, pathSnapshotResume)
	if err == nil {
		defer c.close()
		offer, err = receiveOffer(c)
	}
	if isStatus(err, http.StatusNotFound) {
		if c, err = t.openSnapshotStream(urls[0], snap, pathSnapshot); err == nil {
			defer c.close()
		}
	}
	if err != nil {
		return nil, err
	}
	w, err := sendSnapshotContent(&c.peerStream, snap, offer)
	if err != nil {
		return w, err
	}
	if err := c.closeSend(); err != nil {
		return w, err
	}
	return w, c.result()
}

// openSnapshotStream opens a snapshot stream on path and sends the
// MsgSnap.
func (t *peerTransport) openSnapshotStream(peerURL string, snap core.OutgoingSnapshot, path string) (*peerCall, error) {
	mb, err := proto.Marshal(snap.Msg)
	if err != nil {
		return nil, err
	}
	c, err := t.dialer.openStream(context.Background(), peerURL, path, t.clusterID, t.id, snap.To)
	if err != nil {
		return nil, err
	}
	if err := c.send(frameRaft, mb); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// frameSource is the receiving end of a stream: a peerStream, or a
// peerCall's.
type frameSource interface{ recv() ([]byte, error) }

// receiveOffer reads what the receiver holds of an earlier transfer.
func receiveOffer(c frameSource) (snapresume.Offer, error) {
	b, err := c.recv()
	if err != nil {
		return snapresume.Offer{}, noEOF(err)
	}
	switch {
	case len(b) > 0 && b[0] == frameOffer:
		return snapresume.ParseOffer(b[1:])
	case len(b) > 0 && b[0] == frameStatus:
		// The receiver refused the snapshot before its content.
		if err := verdict(b); err != nil {
			return snapresume.Offer{}, err
		}
	}
	return snapresume.Offer{}, errors.New("snapshot stream: the receiver did not answer with its offer")
}
