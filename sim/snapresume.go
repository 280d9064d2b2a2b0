package sim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"slices"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/driver"
	"github.com/detcd/detcd/server"
	"github.com/detcd/detcd/snapresume"
)

// A snapshot transfer in the model: the sender's side is the world's,
// the receiver's the server's (peerstream.go). The sender opens a stream
// to server.PeerSnapshotPath on the target, whose peer handler runs as a
// task: it takes the MsgSnap, cuts what snapresume.Cuts says, and answers
// with its offer (the chunks of a partial it holds); the sender plans
// what crosses the link (snapresume.PlanFor, the server's decision) and
// encodes the content with the server's sender (the chunks the offer
// holds as their indexes), then its bytes cross the link in
// snapshotSteps steps, each handing the handler the frames whose chunks
// arrived whole: the handler writes them to the target's disk through the
// driver's SnapshotReceiver, and, after the sum, hands the sealed file to
// the loop and answers with its verdict, which the sender reports. A step
// that finds the link cut or the sender crashed breaks the stream off,
// and the handler keeps what arrived as a partial (package snapresume
// decides which partials it keeps); a newer leader's transfer to the same
// member breaks off one in flight from another member first, so the
// handler's wait for it to keep its file is short. A crash of the target
// ends its handler, and the transfer fails.
//
// The store's pre-fill (snapbw.go) follows the real content in the
// modelled stream: chunks of snapresume.ChunkBytes whose digests stand
// for the same bytes on every member, never on any disk or stream. How
// much of it a partial holds is kept beside the partial, by its
// snapshot's index and term (snapIn.prefill), so a leader's transfer of
// a large store resumes past what arrived before.

// snapshotSteps is how many times a transfer's progress is checked.
const snapshotSteps = 16

// snapIn is what a member takes of snapshots, for one incarnation: the
// driver's partials, which its peer handler fills, the pre-fill each
// holds, the transfers in flight.
type snapIn struct {
	partials *driver.SnapshotPartials
	prefill  map[partialKey]int64 // pre-fill bytes a partial holds
	flights  []*snapFlight
}

// partialKey names a partial by its snapshot.
type partialKey struct{ index, term uint64 }

func newSnapIn(m *member) *snapIn {
	return &snapIn{partials: driver.NewSnapshotPartials(m.disk), prefill: map[partialKey]int64{}}
}

// snapFlight is one transfer in the model.
type snapFlight struct {
	w              *World
	from, to       *member
	fromInc, toInc int
	s              core.OutgoingSnapshot
	key            partialKey
	content        []byte
	// body and resp are the stream's: the request body the handler
	// reads, and its answer; sender writes the server's frames to out,
	// from which they go to body as they arrive.
	body       *bodyPipe
	resp       *peerResponse
	sender     *server.SnapshotStreamSender
	out        bytes.Buffer
	frameEnds  []int // in out, after the MsgSnap: each real chunk's frame, then the sum's
	framesSent int
	offered    bool
	chunks     []snapresume.Chunk // the real content's, then the pre-fill's
	realChunks int
	plan       snapresume.Plan
	startUs    int64
	next       int   // the chunk arriving
	within     int64 // of it, arrived
	sent       int64 // of the plan's SentBytes, arrived
	prefill    int64 // pre-fill bytes arrived or held
	// heldPrefill is what the partial resumed from holds of the
	// pre-fill, and resumedFromIndex its snapshot's index.
	heldPrefill      int64
	resumedFromIndex uint64
	done             bool
	report           func(ok bool)
}

// sendSnapshot streams a snapshot: it breaks off the transfers to the
// target this one cuts, then opens the stream, as the next event; the
// sender learns whether the target installed it, or that it failed with
// either side's crash or the link, as a broken stream would tell it.
func (w *World) sendSnapshot(from *member, s core.OutgoingSnapshot) {
	var content bytes.Buffer
	sw := &driver.SnapshotSummer{W: &content}
	err := s.Write(sw)
	target := w.members[s.To-1]
	reported := false
	var checked *snapshotFlight
	report := func(ok bool) {
		if !reported {
			reported = true
			w.checks.snapshotEnded(checked)
			from.event(func() { from.d.ReportSnapshot(s.To, ok) })()
		}
	}
	lost := func() {
		w.trace.logf(w.now, "%s>%s snapshot %d lost", from.name, target.name, s.Index)
		w.after(w.settings.ClientTimeoutUs, func() { report(false) })
	}
	if err != nil || !target.up || !w.net.Connected(from.id, target.id) {
		lost()
		return
	}
	meta := s.Msg.GetSnapshot().GetMetadata()
	f := &snapFlight{w: w, from: from, to: target, fromInc: from.inc, toInc: target.inc, s: s,
		key: partialKey{meta.GetIndex(), meta.GetTerm()}, content: content.Bytes()}
	f.report = report
	// The streams this one cuts, and the sender's own earlier one, break
	// off first: their handlers keep their files before this one's offer.
	in := target.snapIn
	active := make([]snapresume.Transfer, len(in.flights))
	for i, o := range in.flights {
		active[i] = snapresume.Transfer{From: o.from.id, Term: o.s.Msg.GetTerm()}
	}
	cut, _ := snapresume.Cuts(active, snapresume.Transfer{From: from.id, Term: s.Msg.GetTerm()})
	for i, o := range slices.Clone(in.flights) {
		if slices.Contains(cut, i) || o.from == from {
			o.breakOff("cut by a newer leader's")
		}
	}
	w.schedule(w.now, func() {
		if f.to.inc != f.toInc || !f.to.up {
			lost()
			return
		}
		if f.open() {
			checked = w.checks.snapshotSent(from, target)
		}
	})
}

// open opens the stream to the target's handler, which runs until it
// waits for the content; false if the stream could not be opened.
func (f *snapFlight) open() bool {
	w, target, in := f.w, f.to, f.to.snapIn
	// The partial the handler will resume from (it picks the same): the
	// pre-fill it holds goes on from there.
	kept := in.partials.Kept()
	for k := range in.prefill { //detcd:maporder-ok: deletes only
		if !slices.ContainsFunc(kept, func(p snapresume.Partial) bool { return (partialKey{p.Index, p.Term}) == k }) {
			delete(in.prefill, k)
		}
	}
	if i := snapresume.Pick(kept, f.key.index, f.key.term); i >= 0 {
		f.heldPrefill, f.resumedFromIndex = in.prefill[partialKey{kept[i].Index, kept[i].Term}], kept[i].Index
	}
	f.body, f.resp = &bodyPipe{m: target, inc: target.inc}, newPeerResponse()
	f.sender = server.NewSnapshotStreamSender(&f.out, &f.resp.body)
	req, err := server.NewPeerStreamRequest(context.Background(), peerURL(target.name), server.PeerSnapshotPath,
		f.from.cfg.ClusterID, f.from.id, target.id, f.body)
	if err == nil {
		err = f.sender.SendMsg(f.s.Msg)
	}
	if err != nil {
		w.checks.fail("%s: a snapshot stream: %v", f.from.name, err)
		return false
	}
	f.body.write(f.out.Bytes())
	f.out.Reset()
	in.flights = append(in.flights, f)
	f.resp.flushed = f.answered
	h := target.peerIn.Handler()
	w.spawn(func() {
		h.ServeHTTP(f.resp, req)
		// Without its verdict: the receiver's process died with its file
		// (its restart clears temporary files), or it refused the stream.
		f.end(false)
	})
	return true
}

// answered reads what the handler sent: its offer, which starts the
// content, or its verdict.
func (f *snapFlight) answered() {
	w := f.w
	if f.done || f.to.inc != f.toInc || !f.to.up || f.resp.body.Len() == 0 {
		return // the stream's 200 comes first, with no frame
	}
	if !f.offered {
		offer, err := f.sender.Offer()
		if err != nil {
			w.trace.logf(w.now, "%s>%s snapshot %d refused: %v", f.from.name, f.to.name, f.s.Index, err)
			f.end(false)
			return
		}
		f.offered = true
		f.start(offer)
		return
	}
	err := f.sender.Result()
	if err != nil {
		w.trace.logf(w.now, "%s receive snapshot: %v", f.to.name, err)
	}
	f.end(err == nil)
}

// start plans what crosses the link from the receiver's offer (its
// partial's real chunks, and the pre-fill that partial holds), encodes
// the content with the server's sender, and sets the steps.
func (f *snapFlight) start(offer snapresume.Offer) {
	w, from, target := f.w, f.from, f.to
	for b := f.content; len(b) > 0; b = b[min(len(b), snapresume.ChunkBytes):] {
		f.chunks = append(f.chunks, snapresume.ChunkOf(b[:min(len(b), snapresume.ChunkBytes)]))
	}
	f.realChunks = len(f.chunks)
	f.chunks = append(f.chunks, prefillChunks(w.settings.StorePrefillBytes)...)
	// The pre-fill a partial holds follows its real content: it lines up
	// with this content's only if that has as many chunks.
	full := offer
	if f.heldPrefill > 0 && len(offer.Chunks) == f.realChunks {
		full.Chunks = append(slices.Clone(offer.Chunks), prefillChunks(f.heldPrefill)...)
	}
	f.plan = snapresume.PlanFor(full, f.chunks)
	content := f.content
	snap := f.s
	snap.Write = func(w io.Writer) error {
		_, err := w.Write(content)
		return err
	}
	if _, err := f.sender.SendContent(snap, offer); err != nil {
		w.checks.fail("%s: a snapshot's content does not encode: %v", from.name, err)
		return
	}
	f.frameEnds = frameEnds(f.out.Bytes())
	size := w.snapshotBytes(int64(len(f.content)))
	at, sent := w.snapshotArrives(from, target, f.plan.SentBytes, size)
	if !sent {
		f.body.closeWith(errLost)
		f.done = true
		target.snapIn.flights = slices.DeleteFunc(target.snapIn.flights, func(o *snapFlight) bool { return o == f })
		w.trace.logf(w.now, "%s>%s snapshot %d lost", from.name, target.name, f.s.Index)
		w.after(w.settings.ClientTimeoutUs, func() { f.report(false) })
		return
	}
	if f.plan.HeldBytes > 0 {
		w.trace.logf(w.now, "%s>%s snapshot %d (%d bytes, %d with the store's pre-fill, %d held from partial %d; on its disk in %dus)", from.name, target.name, f.s.Index, len(f.content), size, f.plan.HeldBytes, f.resumedFromIndex, at-w.now)
	} else {
		w.trace.logf(w.now, "%s>%s snapshot %d (%d bytes, %d with the store's pre-fill; on its disk in %dus)", from.name, target.name, f.s.Index, len(f.content), size, at-w.now)
	}
	f.startUs = w.now
	for k := int64(1); k <= snapshotSteps; k++ {
		w.schedule(f.startUs+(at-f.startUs)*k/snapshotSteps, func() { f.advance(k) })
	}
}

// errLost ends a stream the network lost.
var errLost = errors.New("the network lost the stream")

// frameEnds are where each frame of a stream ends.
func frameEnds(b []byte) []int {
	var out []int
	for at := 0; at+4 <= len(b); {
		at += 4 + int(binary.BigEndian.Uint32(b[at:]))
		out = append(out, at)
	}
	return out
}

// prefillChunks are the chunks of n bytes of pre-fill: the same on every
// member, so their digests stand for their bytes.
func prefillChunks(n int64) []snapresume.Chunk {
	var out []snapresume.Chunk
	for i := uint64(0); n > 0; i++ {
		c := snapresume.Chunk{Bytes: min(n, snapresume.ChunkBytes)}
		b := binary.LittleEndian.AppendUint64([]byte("detcd-sim pre-fill"), i)
		c.Digest = sha256.Sum256(binary.LittleEndian.AppendUint64(b, uint64(c.Bytes)))
		out = append(out, c)
		n -= c.Bytes
	}
	return out
}

// advance is step k of snapshotSteps: what crossed the link by now
// reaches the receiver, or the stream breaks off.
func (f *snapFlight) advance(k int64) {
	switch {
	case f.done:
	case f.to.inc != f.toInc || !f.to.up:
		f.end(false) // its handler ended with the process
	case f.from.inc != f.fromInc:
		f.breakOff("the sender crashed")
	case !f.w.net.Connected(f.from.id, f.to.id):
		f.breakOff("the link broke")
	default:
		f.deliver(f.plan.SentBytes * k / snapshotSteps)
		if k == snapshotSteps {
			// The sum, and the end of the stream.
			f.hand(len(f.frameEnds))
			f.body.closeWith(io.EOF)
		}
	}
}

// deliver counts the chunks up to budget sent bytes, and the held ones
// between them, as arrived, and hands the handler the frames of the real
// chunks that arrived whole.
func (f *snapFlight) deliver(budget int64) {
	for f.next < len(f.chunks) {
		i := f.next
		c := f.chunks[i]
		if f.plan.Held[i] {
			f.take(i, c.Bytes)
			f.next++
			continue
		}
		n := min(c.Bytes-f.within, budget-f.sent)
		if n <= 0 {
			break
		}
		f.take(i, n)
		f.within, f.sent = f.within+n, f.sent+n
		if f.within == c.Bytes {
			f.next, f.within = f.next+1, 0
		}
	}
	f.hand(min(f.next, f.realChunks))
}

// take is n bytes of chunk i arriving: the pre-fill's are counted.
func (f *snapFlight) take(i int, n int64) {
	if i >= f.realChunks {
		f.prefill += n
	}
}

// hand writes the frames before frame n to the stream's body.
func (f *snapFlight) hand(n int) {
	if n <= f.framesSent {
		return
	}
	from := 0
	if f.framesSent > 0 {
		from = f.frameEnds[f.framesSent-1]
	}
	f.body.write(f.out.Bytes()[from:f.frameEnds[n-1]])
	f.framesSent = n
}

// breakOff ends a transfer whose stream broke: the handler keeps what
// arrived, and the pre-fill it holds is kept for the next transfer.
func (f *snapFlight) breakOff(why string) {
	if f.body != nil {
		f.body.closeWith(errors.New(why))
	}
	if f.prefill > 0 {
		f.to.snapIn.prefill[f.key] = f.prefill
	}
	f.w.trace.logf(f.w.now, "%s>%s snapshot %d broke off (%s) after %d of %d bytes sent", f.from.name, f.to.name, f.s.Index, why, f.sent, f.plan.SentBytes)
	f.end(false)
}

func (f *snapFlight) end(ok bool) {
	if f.done {
		return
	}
	f.done = true
	if in := f.to.snapIn; in != nil && f.to.inc == f.toInc {
		in.flights = slices.DeleteFunc(in.flights, func(o *snapFlight) bool { return o == f })
	}
	f.w.after(0, func() { f.report(ok) })
}
