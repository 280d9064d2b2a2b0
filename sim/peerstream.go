package sim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/corrupt"
	"github.com/detcd/detcd/server"
)

// Peer traffic reaches a member as the server's does: through its peer
// endpoints' handler (server.PeerReceiver), the server's own code, run as
// a task. A member's messages to another travel on a stream, a POST to
// server.PeerStreamPath that the sender opens when a message first
// reaches that incarnation of the target, with the server's headers; its
// body is a pipe in the world, which takes each message, framed by the
// server's encoder, when the network delivers it (its latency, loss,
// duplicates and reordering, as before), and parks the handler's task
// while it is empty. The handler checks the stream (cluster, target, a
// removed sender is refused with 410, which the sender takes as the
// server's senders do: it stops), decodes each frame and posts it to the
// member's loop, as a member event. A crash of the target ends its
// handlers (their reads see the member stopped); a crash of the sender
// ends its streams' bodies where its FIN reaches (closePeerStreams).

// peerLink is one member's stream to another: one incarnation of each.
type peerLink struct {
	fromInc, toInc int
	body           *bodyPipe
	// open until the handler returned: a message that finds it closed
	// opens another.
	open bool
}

type linkKey struct{ from, to uint64 }

// startPeerReceiver puts the server's peer endpoints on the member, for
// this incarnation.
func (m *member) startPeerReceiver() {
	rt := &taskRuntime{m: m, inc: m.inc}
	crt := &corruptRuntime{m: m, inc: m.inc}
	m.peerIn = server.NewPeerReceiver(server.PeerReceiverConfig{
		Log: m.traceLog("peer"), ID: m.id, ClusterID: m.cfg.ClusterID, Instruments: m.inst.Instruments,
		Loop: rt, Driver: m.d, Disk: m.disk, Partials: m.snapIn.partials,
		Hashes: func(ctx context.Context, rev int64) (mvcc.KVHash, int64, error) {
			return corrupt.LocalHash(ctx, crt.OnLoop, rev)
		},
		AwaitReleased: m.w.awaitReleased,
	})
	m.peerIn.SyncMembers()
}

// awaitReleasedPollUs is how often awaitReleased looks again.
const awaitReleasedPollUs = 1_000

// awaitReleased is the server's wait for the snapshot transfers a new one
// cut to keep their files, in the running task: it looks every
// awaitReleasedPollUs of virtual time, up to the server's
// SnapshotCutWaitMax.
func (w *World) awaitReleased(_ context.Context, released []<-chan struct{}) {
	for waited := int64(0); waited < server.SnapshotCutWaitMax.Microseconds(); waited += awaitReleasedPollUs {
		if allClosed(released) {
			return
		}
		w.sleep(awaitReleasedPollUs)
	}
}

func allClosed(cs []<-chan struct{}) bool {
	for _, c := range cs {
		select {
		case <-c:
		default:
			return false
		}
	}
	return true
}

// PostPeer implements the server's peer loop: a peer's message runs as
// the member's next event; an incarnation that ended drops it.
func (r *taskRuntime) PostPeer(fn func()) bool {
	return r.Post(context.Background(), fn) == nil
}

// deliverFrame is a frame that from sent in incarnation inc reaching
// target now, on from's stream to it, which it opens if it has none to
// this incarnation; false if it was lost: the target is down, or the
// sender's process that sent it died with its streams.
func (w *World) deliverFrame(from *member, inc int, target *member, frame []byte) bool {
	if !target.up || target.peerIn == nil {
		return false
	}
	k := linkKey{from.id, target.id}
	l := w.links[k]
	if l == nil || !l.open || l.fromInc != inc || l.toInc != target.inc {
		if inc != from.inc || !from.up {
			return false
		}
		l = w.openLink(from, target)
		if l == nil {
			return false
		}
	}
	l.body.write(frame)
	return true
}

// openLink opens from's stream to target: its handler runs as a task of
// target's until the stream ends.
func (w *World) openLink(from, target *member) *peerLink {
	l := &peerLink{fromInc: from.inc, toInc: target.inc, open: true, body: &bodyPipe{m: target, inc: target.inc}}
	req, err := server.NewPeerStreamRequest(context.Background(), peerURL(target.name), server.PeerStreamPath,
		from.cfg.ClusterID, from.id, target.id, l.body)
	if err != nil {
		w.checks.fail("%s: a peer stream's request: %v", from.name, err)
		return nil
	}
	if w.links == nil {
		w.links = map[linkKey]*peerLink{}
	}
	k := linkKey{from.id, target.id}
	if old := w.links[k]; old != nil && old.open {
		// A stream from an earlier incarnation of either end, whose end
		// never reached this one: the connection times out.
		old.body.closeWith(errConnReset)
	}
	w.links[k] = l
	h, resp := target.peerIn.Handler(), newPeerResponse()
	w.spawn(func() {
		h.ServeHTTP(resp, req)
		l.open = false
		if l.body.err == nil && target.inc == l.toInc && target.up && resp.code == http.StatusOK &&
			!slices.Contains(target.node.RemovedMembers(), from.id) {
			// Neither side ended it, and the sender is a member: the
			// handler could not read what the server's sender wrote.
			w.checks.fail("peer: %s's handler ended %s's stream", target.name, from.name)
		}
		if resp.code == http.StatusGone {
			// The server's sender hears it was removed: it stops.
			w.carry(target.id, from.id, from.event(func() {
				w.trace.logf(w.now, "%s hears from %s it was removed", from.name, target.name)
				from.d.StepPeer(&core.PeerMessage{From: target.id, To: from.id, Removed: true})
			}))
		}
	})
	return l
}

// closeLinks ends the dead member's streams to peer: its FIN reached it.
func (w *World) closeLinks(dead, peer *member) {
	if l := w.links[linkKey{dead.id, peer.id}]; l != nil && l.open {
		l.body.closeWith(errConnReset)
	}
}

// errConnReset ends a stream whose sender died.
var errConnReset = errors.New("connection reset by peer")

// bodyPipe is a stream's body in the world: the bytes the network
// delivered wait in it until the handler's task reads them; a read with
// none parks the task until more arrive or the stream ends.
type bodyPipe struct {
	m     *member // the reader's, in incarnation inc
	inc   int
	buf   []byte
	err   error // once buf is read: how the stream ended
	ready *signal
}

func (p *bodyPipe) write(b []byte) {
	p.buf = append(p.buf, b...)
	p.wake()
}

func (p *bodyPipe) closeWith(err error) {
	if p.err == nil {
		p.err = err
	}
	p.wake()
}

func (p *bodyPipe) wake() {
	if s := p.ready; s != nil {
		p.ready = nil
		s.Fire()
	}
}

// Read implements io.Reader, in the reader's task; a crash of its member
// ends it with core.ErrStopped.
func (p *bodyPipe) Read(b []byte) (int, error) {
	for len(p.buf) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		s := p.m.newSignal(p.inc)
		p.ready = s
		if err := s.Wait(context.Background()); err != nil {
			p.ready = nil
			return 0, err
		}
	}
	n := copy(b, p.buf)
	if p.buf = p.buf[n:]; len(p.buf) == 0 {
		p.buf = p.buf[:0:0]
	}
	return n, nil
}

// Close implements io.Closer: the handler is done with the body.
func (p *bodyPipe) Close() error {
	p.closeWith(io.ErrClosedPipe)
	return nil
}

// peerResponse is a peer handler's answer, kept for the sender: its
// status and what it wrote. It supports what the server's handlers ask of
// a response (full duplex, flushes).
type peerResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
	// flushed, if set, is told the handler flushed what it wrote.
	flushed func()
}

func newPeerResponse() *peerResponse { return &peerResponse{header: http.Header{}} }

func (r *peerResponse) Header() http.Header { return r.header }

func (r *peerResponse) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (r *peerResponse) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// FlushError implements http.ResponseController's flush.
func (r *peerResponse) FlushError() error {
	r.WriteHeader(http.StatusOK)
	if r.flushed != nil {
		r.flushed()
	}
	return nil
}

// EnableFullDuplex implements http.ResponseController's: the handler
// reads the body while it answers.
func (r *peerResponse) EnableFullDuplex() error { return nil }
