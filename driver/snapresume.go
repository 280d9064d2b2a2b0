package driver

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/disk"
	"github.com/detcd/detcd/internal/chunk"
	"github.com/detcd/detcd/snapresume"
)

// A transfer that broke off leaves its file as a partial, which the next
// transfer to the member resumes from (package snapresume decides how):
// the receiver offers the digests of the partial's chunks, the sender
// skips the chunks it holds, and the receiver copies those from the
// partial into the new file as their turn comes, so the file is written
// in order and checked whole against the sender's sum as before. A newer
// leader's transfer cuts one in progress from another member: its sender
// is the leader that counts.

// ErrSnapshotCut fails a transfer that a newer one to the same member
// cut; its file is kept as a partial for the newer one.
var ErrSnapshotCut = errors.New("driver: snapshot transfer cut by a newer one")

// SnapshotPartials keeps a member's partial snapshot files, at most
// snapresume.PartialsMax, for as long as its disk is open (a restart
// clears them with the other temporary files). Safe for concurrent use.
type SnapshotPartials struct {
	dk     *disk.Disk
	mu     sync.Mutex
	kept   []snapresume.Partial
	active []*SnapshotReceiver
}

// NewSnapshotPartials keeps partials on dk.
func NewSnapshotPartials(dk *disk.Disk) *SnapshotPartials { return &SnapshotPartials{dk: dk} }

// Adopt takes the received files a restart found
// (disk.Disk.ReceivedLeftovers) as partials, within
// snapresume.PartialsMax, and removes the others: a transfer the restart
// broke off resumes from what arrived before it. Their term is unknown
// (0), which only makes Pick prefer the largest; the chunks are checked
// by their digests as for any partial. Call it before any transfer.
func (ps *SnapshotPartials) Adopt(left []wal.ReceivedTemp) []snapresume.Partial {
	var found []snapresume.Partial
	for _, l := range left {
		f, err := ps.dk.OpenPartial(l.Name)
		if err != nil {
			_ = ps.dk.RemoveReceived(l.Name) // not resumable; a leftover goes at the next start
			continue
		}
		found = append(found, snapresume.Partial{Name: l.Name, Index: l.Index, Bytes: f.Bytes()})
		f.Close()
	}
	keep, drop := snapresume.Keep(found)
	for _, p := range drop {
		_ = ps.dk.RemoveReceived(p.Name)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.kept = keep
	return slices.Clone(keep)
}

// Kept lists the partials kept now.
func (ps *SnapshotPartials) Kept() []snapresume.Partial {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return slices.Clone(ps.kept)
}

// resume is a receiver's part in resumption; all zero for a receiver
// without SnapshotPartials.
type resume struct {
	ps        *SnapshotPartials
	cut       atomic.Bool   // a newer transfer cut this one
	released  chan struct{} // closed once the file is kept or gone
	cutOthers []*SnapshotReceiver
	before    []*SnapshotReceiver    // the same sender's, in progress when r began
	base      *wal.PartialCheckpoint // the partial resumed from
	from      snapresume.Partial
	offer     snapresume.Offer
	buf       []byte // one chunk, for copies from base
	ended     bool   // kept or finished: the file is no longer r's
}

// Receive starts receiving the content streamed beside m, a MsgSnap, and
// cuts the transfers in progress that snapresume.Cuts says (Cut waits for
// them), or is refused. Offer then picks the partial to resume from.
func (ps *SnapshotPartials) Receive(m *raftpb.Message) (*SnapshotReceiver, error) {
	r, err := ReceiveSnapshot(ps.dk, m)
	if err != nil {
		return nil, err
	}
	r.ps, r.released = ps, make(chan struct{})
	ps.mu.Lock()
	defer ps.mu.Unlock()
	active := make([]snapresume.Transfer, len(ps.active))
	for i, o := range ps.active {
		active[i] = transferOf(o.msg)
	}
	cut, refused := snapresume.Cuts(active, transferOf(m))
	if refused {
		r.cw.Abort()
		return nil, errorf("snapshot from a leader of term %d while a later leader's streams", m.GetTerm())
	}
	for i, o := range ps.active {
		if slices.Contains(cut, i) {
			o.cut.Store(true)
			r.cutOthers = append(r.cutOthers, o)
		} else {
			// The sender's own: it gave that one up to start this one,
			// and the stream's end may not have reached us yet.
			r.before = append(r.before, o)
		}
	}
	ps.active = append(ps.active, r)
	return r, nil
}

func transferOf(m *raftpb.Message) snapresume.Transfer {
	return snapresume.Transfer{From: m.GetFrom(), Term: m.GetTerm()}
}

// Cut returns, for each transfer r cut, and each earlier one from the
// same sender, a channel closed once that one kept its file, for Offer
// to pick.
func (r *SnapshotReceiver) Cut() []<-chan struct{} {
	var out []<-chan struct{}
	for _, o := range append(slices.Clone(r.cutOthers), r.before...) {
		out = append(out, o.released)
	}
	return out
}

// WasCut says whether a newer transfer cut this one.
func (r *SnapshotReceiver) WasCut() bool { return r.cut.Load() }

// Offer picks the partial to resume from (snapresume.Pick) and digests
// its chunks from the disk, for the sender. A partial that cannot be read
// is removed, and the error says why; the offer is then empty and the
// transfer starts from zero.
func (r *SnapshotReceiver) Offer() (snapresume.Offer, error) {
	ps := r.ps
	if ps == nil {
		return snapresume.Offer{}, nil
	}
	meta := r.msg.GetSnapshot().GetMetadata()
	ps.mu.Lock()
	i := snapresume.Pick(ps.kept, meta.GetIndex(), meta.GetTerm())
	var p snapresume.Partial
	if i >= 0 {
		p = ps.kept[i]
		ps.kept = slices.Delete(ps.kept, i, i+1)
	}
	ps.mu.Unlock()
	if i < 0 {
		return snapresume.Offer{}, nil
	}
	base, offer, err := digestPartial(ps.dk, p.Name, r.chunkBuf())
	if err != nil {
		_ = ps.dk.RemoveReceived(p.Name) // the error says what went wrong
		return snapresume.Offer{}, errorf("partial snapshot %s not resumable: %w", p.Name, err)
	}
	r.base, r.from, r.offer = base, p, offer
	return offer, nil
}

// Resumes is the partial the transfer resumes from (zero: none).
func (r *SnapshotReceiver) Resumes() snapresume.Partial { return r.from }

func (r *SnapshotReceiver) chunkBuf() []byte {
	if r.buf == nil {
		r.buf = make([]byte, snapresume.ChunkBytes)
	}
	return r.buf
}

// digestPartial opens the partial name and digests its chunks, as many as
// an offer lists.
func digestPartial(dk *disk.Disk, name string, buf []byte) (*wal.PartialCheckpoint, snapresume.Offer, error) {
	f, err := dk.OpenPartial(name)
	if err != nil {
		return nil, snapresume.Offer{}, err
	}
	var o snapresume.Offer
	n := min(f.Bytes(), snapresume.OfferChunksMax*snapresume.ChunkBytes)
	for off := int64(0); off < n; off += snapresume.ChunkBytes {
		b := buf[:min(snapresume.ChunkBytes, n-off)]
		if _, err := f.ReadAt(b, off); err != nil {
			f.Close()
			return nil, snapresume.Offer{}, err
		}
		o.Chunks = append(o.Chunks, snapresume.ChunkOf(b))
	}
	return f, o, nil
}

// Held takes chunk i, which the sender skipped because the offer holds
// it, from the partial: the chunks come in order, held or sent.
func (r *SnapshotReceiver) Held(i int) error {
	if r.WasCut() {
		return ErrSnapshotCut
	}
	at := int64(i) * snapresume.ChunkBytes
	switch {
	case r.base == nil || i < 0 || i >= len(r.offer.Chunks):
		return errorf("the sender skipped chunk %d, which this member does not hold", i)
	case r.Received() != at:
		return errorf("the sender skipped chunk %d at offset %d with %d bytes arrived", i, at, r.Received())
	}
	b := r.chunkBuf()[:r.offer.Chunks[i].Bytes]
	if _, err := r.base.ReadAt(b, at); err != nil {
		return errorf("partial snapshot %s: %w", r.from.Name, err)
	}
	_, err := r.sum.Write(b)
	return err
}

// finished ends a transfer that reached its sum: the partial it resumed
// from goes, and once the snapshot arrived whole (ok), every partial.
func (r *SnapshotReceiver) finished(ok bool) {
	if r.ps == nil {
		return
	}
	var drop []snapresume.Partial
	if r.base != nil {
		drop = append(drop, r.from)
	}
	r.release(func(kept []snapresume.Partial) []snapresume.Partial {
		if ok {
			drop = append(drop, kept...)
			return nil
		}
		return kept
	})
	r.remove(drop)
}

// keep keeps the file of a transfer that broke off as a partial, beside
// the one it resumed from, within snapresume.PartialsMax.
func (r *SnapshotReceiver) keep() {
	meta := r.msg.GetSnapshot().GetMetadata()
	var add []snapresume.Partial
	if err := r.cw.Keep(); err == nil {
		add = append(add, snapresume.Partial{Name: r.cw.Name(), Index: meta.GetIndex(), Term: meta.GetTerm(), Bytes: r.cw.Size()})
	}
	if r.base != nil {
		add = append(add, r.from)
	}
	var drop []snapresume.Partial
	r.release(func(kept []snapresume.Partial) []snapresume.Partial {
		kept, drop = snapresume.Keep(append(kept, add...))
		return kept
	})
	r.remove(drop)
}

// release closes the partial resumed from, updates the kept list and
// ends r's turn as an active transfer.
func (r *SnapshotReceiver) release(update func([]snapresume.Partial) []snapresume.Partial) {
	if r.base != nil {
		r.base.Close()
	}
	ps := r.ps
	r.ended = true
	ps.mu.Lock()
	ps.kept = update(ps.kept)
	ps.active = slices.DeleteFunc(ps.active, func(o *SnapshotReceiver) bool { return o == r })
	ps.mu.Unlock()
	close(r.released)
}

func (r *SnapshotReceiver) remove(ps []snapresume.Partial) {
	for _, p := range ps {
		_ = r.ps.dk.RemoveReceived(p.Name) // a leftover goes at the next start
	}
}

// ResumeWriter is the sending side: it cuts a snapshot's content into
// snapresume chunks and hands each to Send, or, for a chunk the offer
// holds, its index to Skip. Memory: one chunk, reused, so Send must not
// keep the slice it gets past its return.
type ResumeWriter struct {
	Offer snapresume.Offer
	Send  func([]byte) error
	Skip  func(i int) error
	// HeldBytes and SentBytes count the content skipped and sent.
	HeldBytes, SentBytes int64
	w                    *chunk.Writer
	next                 int
}

func (rw *ResumeWriter) Write(p []byte) (int, error) {
	if rw.w == nil {
		// Send and Skip keep no chunk: the stream writes it out at once.
		rw.w = &chunk.Writer{Size: snapresume.ChunkBytes, Send: rw.chunk, Reuse: true}
	}
	return rw.w.Write(p)
}

// Flush hands on the last, short, chunk.
func (rw *ResumeWriter) Flush() error {
	if rw.w == nil {
		return nil
	}
	return rw.w.Flush()
}

func (rw *ResumeWriter) chunk(b []byte) error {
	i := rw.next
	rw.next++
	// Digest only what the receiver may hold: a transfer from zero costs
	// no hashing.
	if i < len(rw.Offer.Chunks) && rw.Offer.Holds(i, snapresume.ChunkOf(b)) {
		rw.HeldBytes += int64(len(b))
		return rw.Skip(i)
	}
	rw.SentBytes += int64(len(b))
	return rw.Send(b)
}
