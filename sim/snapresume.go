package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/driver"
	"github.com/detcd/detcd/snapresume"
)

// A snapshot transfer in the model: its bytes cross the link in
// snapshotSteps steps, each writing what arrived to the receiver's disk
// through the driver's SnapshotReceiver, as the server's stream does; a
// step that finds the link cut or the sender crashed breaks the transfer
// off, and the receiver keeps what arrived as a partial (package
// snapresume decides which partials it keeps); a newer leader's transfer
// to the same member cuts one in flight from another member. The next transfer resumes: the receiver
// offers its partial's chunks, the sender skips those it holds
// (snapresume.PlanFor, the server's decision), and only the rest crosses
// the link.
//
// The store's pre-fill (snapbw.go) follows the real content in the
// modelled stream: chunks of snapresume.ChunkBytes whose digests stand
// for the same bytes on every member, never on any disk. How much of it a
// partial holds is kept beside the partial (snapIn.prefill), so a
// leader's transfer of a large store resumes past what arrived before.

// snapshotSteps is how many times a transfer's progress is checked.
const snapshotSteps = 16

// snapIn is what a member takes of snapshots, for one incarnation: the
// driver's partials, the pre-fill each holds, the transfers in flight.
type snapIn struct {
	partials *driver.SnapshotPartials
	prefill  map[string]int64 // pre-fill bytes a partial holds, by name
	flights  []*snapFlight
}

func newSnapIn(m *member) *snapIn {
	return &snapIn{partials: driver.NewSnapshotPartials(m.disk), prefill: map[string]int64{}}
}

// snapFlight is one transfer in the model.
type snapFlight struct {
	w                *World
	from, to         *member
	fromInc, toInc   int
	s                core.OutgoingSnapshot
	r                *driver.SnapshotReceiver
	content          []byte
	sum              driver.SnapshotSum
	chunks           []snapresume.Chunk // the real content's, then the pre-fill's
	realChunks       int
	plan             snapresume.Plan
	startUs, endUs   int64
	next             int   // the chunk arriving
	within, sent     int64 // of it, and of the plan's SentBytes, arrived
	prefill          int64 // pre-fill bytes arrived or held
	done             bool
	report           func(ok bool)
	resumedFromIndex uint64
}

// sendSnapshot streams a snapshot: it opens the target's receiver,
// resuming from a partial, then crosses the link in steps (snapbw.go
// sets the time) and goes through the target's receive path (a temporary
// file on its disk, checked against the sum, loaded off its loop); the
// sender learns whether it was installed, or failed with either side's
// crash or the link, as a broken stream would tell it.
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
	f := &snapFlight{w: w, from: from, to: target, fromInc: from.inc, toInc: target.inc, s: s,
		content: content.Bytes(), sum: sw.Sum(), report: report}
	if f.r, err = target.snapIn.partials.Receive(s.Msg); err != nil {
		w.trace.logf(w.now, "%s>%s snapshot %d refused: %v", from.name, target.name, s.Index, err)
		w.after(0, func() { report(false) })
		return
	}
	// The receiver notices a cut at its next frame and keeps its file
	// before the newer transfer's offer (the server waits for that).
	for _, o := range slices.Clone(target.snapIn.flights) {
		if o.r.WasCut() {
			o.breakOff("cut by a newer leader's")
		}
	}
	f.planResume()
	size := w.snapshotBytes(int64(len(f.content)))
	at, sent := w.snapshotArrives(from, target, f.plan.SentBytes, size)
	if !sent {
		f.r.Abort()
		lost()
		return
	}
	checked = w.checks.snapshotSent(from, target)
	if f.plan.HeldBytes > 0 {
		w.trace.logf(w.now, "%s>%s snapshot %d (%d bytes, %d with the store's pre-fill, %d held from partial %d; on its disk in %dus)", from.name, target.name, s.Index, len(f.content), size, f.plan.HeldBytes, f.resumedFromIndex, at-w.now)
	} else {
		w.trace.logf(w.now, "%s>%s snapshot %d (%d bytes, %d with the store's pre-fill; on its disk in %dus)", from.name, target.name, s.Index, len(f.content), size, at-w.now)
	}
	target.snapIn.flights = append(target.snapIn.flights, f)
	f.startUs, f.endUs = w.now, at
	for k := int64(1); k <= snapshotSteps; k++ {
		w.schedule(f.startUs+(at-f.startUs)*k/snapshotSteps, func() { f.advance(k) })
	}
}

// planResume takes the receiver's offer (its partial's real chunks, and
// the pre-fill that partial holds) and decides what crosses the link.
func (f *snapFlight) planResume() {
	in := f.to.snapIn
	offer, err := f.r.Offer()
	if err != nil {
		f.w.trace.logf(f.w.now, "%s: %v", f.to.name, err)
	}
	for b := f.content; len(b) > 0; b = b[min(len(b), snapresume.ChunkBytes):] {
		f.chunks = append(f.chunks, snapresume.ChunkOf(b[:min(len(b), snapresume.ChunkBytes)]))
	}
	f.realChunks = len(f.chunks)
	f.chunks = append(f.chunks, prefillChunks(f.w.settings.StorePrefillBytes)...)
	base := f.r.Resumes()
	f.resumedFromIndex = base.Index
	// The pre-fill a partial holds follows its real content: it lines up
	// with this content's only if that has as many chunks.
	if held := in.prefill[base.Name]; held > 0 && len(offer.Chunks) == f.realChunks {
		offer.Chunks = append(slices.Clone(offer.Chunks), prefillChunks(held)...)
	}
	f.plan = snapresume.PlanFor(offer, f.chunks)
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
// reaches the receiver's file, or the transfer breaks off.
func (f *snapFlight) advance(k int64) {
	switch {
	case f.done:
	case f.to.inc != f.toInc || !f.to.up:
		// The receiver's process died with its file (its restart clears
		// temporary files).
		f.end(false)
	case f.from.inc != f.fromInc:
		f.breakOff("the sender crashed")
	case !f.w.net.Connected(f.from.id, f.to.id):
		f.breakOff("the link broke")
	default:
		if err := f.deliver(f.plan.SentBytes * k / snapshotSteps); err != nil {
			f.breakOff(err.Error())
		} else if k == snapshotSteps {
			f.finish()
		}
	}
}

// deliver hands the receiver the chunks up to budget sent bytes, and the
// held ones between them.
func (f *snapFlight) deliver(budget int64) error {
	for f.next < len(f.chunks) {
		i := f.next
		c := f.chunks[i]
		if f.plan.Held[i] {
			if err := f.take(i, 0, c.Bytes); err != nil {
				return err
			}
			f.next++
			continue
		}
		n := min(c.Bytes-f.within, budget-f.sent)
		if n <= 0 {
			return nil
		}
		if err := f.take(i, f.within, n); err != nil {
			return err
		}
		f.within, f.sent = f.within+n, f.sent+n
		if f.within == c.Bytes {
			f.next, f.within = f.next+1, 0
		}
	}
	return nil
}

// take is n bytes of chunk i from off arriving: real content to the
// receiver's file (a held chunk from its partial), pre-fill counted.
func (f *snapFlight) take(i int, off, n int64) error {
	switch {
	case i >= f.realChunks:
		f.prefill += n
		return nil
	case f.plan.Held[i]:
		return f.r.Held(i)
	}
	at := int64(i)*snapresume.ChunkBytes + off
	_, err := f.r.Write(f.content[at : at+n])
	return err
}

// breakOff ends a transfer whose stream broke: the receiver keeps what
// arrived, and the pre-fill it holds, for the next transfer.
func (f *snapFlight) breakOff(why string) {
	in := f.to.snapIn
	f.r.Abort()
	if f.prefill > 0 {
		in.prefill[f.r.Name()] = f.prefill
	}
	kept := in.partials.Kept()
	for name := range in.prefill { //detcd:maporder-ok: deletes only
		if !slices.ContainsFunc(kept, func(p snapresume.Partial) bool { return p.Name == name }) {
			delete(in.prefill, name)
		}
	}
	f.w.trace.logf(f.w.now, "%s>%s snapshot %d broke off (%s) after %d of %d bytes sent", f.from.name, f.to.name, f.s.Index, why, f.sent, f.plan.SentBytes)
	f.end(false)
}

func (f *snapFlight) end(ok bool) {
	f.done = true
	if in := f.to.snapIn; in != nil && f.to.inc == f.toInc {
		in.flights = slices.DeleteFunc(in.flights, func(o *snapFlight) bool { return o == f })
	}
	f.w.after(0, func() { f.report(ok) })
}

// finish seals what arrived and hands it to the target's loop.
func (f *snapFlight) finish() {
	w, target := f.w, f.to
	f.done = true
	target.snapIn.flights = slices.DeleteFunc(target.snapIn.flights, func(o *snapFlight) bool { return o == f })
	file, err := f.r.Finish(f.sum)
	if err != nil {
		w.trace.logf(w.now, "%s receive snapshot: %v", target.name, err)
		w.after(0, func() { f.report(false) })
		return
	}
	reported := false
	report := func(ok bool) {
		reported = true
		f.report(ok)
	}
	target.event(func() {
		target.d.StepSnapshot(file, func(err error) {
			if err != nil {
				w.trace.logf(w.now, "%s step snapshot: %v", target.name, err)
			}
			w.after(0, func() { report(err == nil || errors.Is(err, core.ErrSnapshotRefused)) })
		})
	})()
	w.watchSnapshot(target, f.toInc, func() bool { return reported }, func() { report(false) })
}
