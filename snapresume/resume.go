// Package snapresume decides how a snapshot transfer that broke off
// resumes, for every runtime. A member that fell behind keeps the file of
// a transfer that broke off (a partial: the stream failed, its sender
// restarted, or a newer leader's stream cut it) and, when a leader
// streams it a snapshot again, offers the digests of the chunks it holds
// (Offer). The sender skips every chunk the receiver holds identically at
// the same offset (Offer.Holds) and streams the rest, so a new leader
// whose snapshot is the same data at another index, or the same leader
// after a few more writes, resends only what differs: the head of the
// content (the index, the term and the revision) and what changed.
//
// The decisions are pure functions: which transfers in progress a new one
// cuts (Cuts), which partial a receiver offers for a snapshot (Pick),
// which partials it keeps (Keep), and which chunks a sender skips
// (Offer.Holds, PlanFor). The server runs them over its peer
// streams and its data directory, the simulator over its network and
// memfs, so a seed replays a resumed transfer.
//
// Invariants: a chunk is skipped only if its length and SHA-256 equal
// those of the receiver's chunk at the same index, digested from the
// bytes on the receiver's disk (a damaged partial chunk is resent); the
// receiver still checks the whole content against the length and CRC-32C
// the sender sends after it, so a mismatch starts over and mixed data is
// never installed.
package snapresume

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
)

const (
	// ChunkBytes is the unit of resumption: the receiver digests its
	// partial in chunks of this size, the sender its content.
	ChunkBytes = 1 << 20
	// PartialsMax bounds the partial files a receiver keeps: one for the
	// transfer that broke off last, one for the largest before it.
	PartialsMax = 2
	// OfferChunksMax bounds the chunks an offer lists: 32 GiB of content,
	// a checkpoint's largest (wal.CheckpointBytesMax), in ChunkBytes.
	OfferChunksMax = 32 << 10
)

// Digest is a chunk's SHA-256.
type Digest [sha256.Size]byte

// Chunk is one chunk of content: its length (ChunkBytes, or less for the
// last) and digest.
type Chunk struct {
	Bytes  int64
	Digest Digest
}

// ChunkOf digests b.
func ChunkOf(b []byte) Chunk { return Chunk{Bytes: int64(len(b)), Digest: sha256.Sum256(b)} }

// Offer is what a receiver holds of a transfer that broke off: the
// chunks of its partial content, in order, chunk i at offset
// i*ChunkBytes. The zero Offer holds nothing: the transfer starts from
// zero.
type Offer struct {
	Chunks []Chunk
}

// Bytes is how much content the offer holds.
func (o Offer) Bytes() int64 {
	var n int64
	for _, c := range o.Chunks {
		n += c.Bytes
	}
	return n
}

// Holds says whether the receiver holds the sender's chunk i, c, so the
// sender may skip it: the receiver's chunk i has c's length and digest.
func (o Offer) Holds(i int, c Chunk) bool {
	return i >= 0 && i < len(o.Chunks) && c.Bytes > 0 && o.Chunks[i] == c
}

// Plan is how a transfer of content chunks goes against an offer: which
// chunks the receiver holds, and how many bytes cross the network.
type Plan struct {
	Held      []bool
	HeldBytes int64
	SentBytes int64
}

// PlanFor decides, chunk by chunk, what a sender of chunks streams to a
// receiver that offers o: the sender's decision (Holds) over a content
// known in advance (the simulator's).
func PlanFor(o Offer, chunks []Chunk) Plan {
	p := Plan{Held: make([]bool, len(chunks))}
	for i, c := range chunks {
		if o.Holds(i, c) {
			p.Held[i] = true
			p.HeldBytes += c.Bytes
		} else {
			p.SentBytes += c.Bytes
		}
	}
	return p
}

// The marshaled offer: u32 chunk count, then per chunk u64 length and the
// 32-byte digest, little-endian.
const chunkWireBytes = 8 + sha256.Size

// Marshal encodes the offer.
func (o Offer) Marshal() []byte {
	b := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+chunkWireBytes*len(o.Chunks)), uint32(len(o.Chunks)))
	for _, c := range o.Chunks {
		b = binary.LittleEndian.AppendUint64(b, uint64(c.Bytes))
		b = append(b, c.Digest[:]...)
	}
	return b
}

// ParseOffer decodes a marshaled offer. Only the last chunk may be
// shorter than ChunkBytes.
func ParseOffer(b []byte) (Offer, error) {
	if len(b) < 4 {
		return Offer{}, fmt.Errorf("snapresume: offer of %d bytes", len(b))
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n > OfferChunksMax || len(b) != 4+n*chunkWireBytes {
		return Offer{}, fmt.Errorf("snapresume: offer of %d chunks in %d bytes (at most %d chunks)", n, len(b), OfferChunksMax)
	}
	o := Offer{Chunks: make([]Chunk, n)}
	for i := range n {
		at := 4 + i*chunkWireBytes
		c := Chunk{Bytes: int64(binary.LittleEndian.Uint64(b[at:]))}
		copy(c.Digest[:], b[at+8:])
		if c.Bytes <= 0 || c.Bytes > ChunkBytes || c.Bytes < ChunkBytes && i < n-1 {
			return Offer{}, fmt.Errorf("snapresume: offer's chunk %d of %d has %d bytes", i, n, c.Bytes)
		}
		o.Chunks[i] = c
	}
	return o, nil
}

// Partial is a kept file of a transfer that broke off: the snapshot it
// was (index, term) and how much of its content arrived.
type Partial struct {
	Name  string
	Index uint64
	Term  uint64
	Bytes int64
}

// Pick chooses the partial to offer a sender of the snapshot (index,
// term): the same snapshot's if kept (all of it will match), else the one
// holding the most content (a newer snapshot of the same store shares
// most of its chunks), the newer of two as large. -1: none holds
// anything.
func Pick(ps []Partial, index, term uint64) int {
	best := -1
	for i, p := range ps {
		switch {
		case p.Bytes <= 0:
		case best < 0:
			best = i
		case same(p, index, term) != same(ps[best], index, term):
			if same(p, index, term) {
				best = i
			}
		case larger(p, ps[best]):
			best = i
		}
	}
	return best
}

func same(p Partial, index, term uint64) bool { return p.Index == index && p.Term == term }

// larger orders partials by content held, then by index.
func larger(a, b Partial) bool {
	return cmp.Or(cmp.Compare(a.Bytes, b.Bytes), cmp.Compare(a.Index, b.Index)) > 0
}

// Keep decides which partials a receiver keeps, at most PartialsMax: the
// ones holding the most content (the newer of two as large), and which
// it drops (their files to remove). Empty ones are dropped.
func Keep(ps []Partial) (keep, drop []Partial) {
	sorted := slices.Clone(ps)
	slices.SortStableFunc(sorted, func(a, b Partial) int {
		switch {
		case larger(a, b):
			return -1
		case larger(b, a):
			return 1
		}
		return 0
	})
	for _, p := range sorted {
		if p.Bytes > 0 && len(keep) < PartialsMax {
			keep = append(keep, p)
		} else {
			drop = append(drop, p)
		}
	}
	return keep, drop
}

// Transfer is a snapshot transfer in progress to a member: who sends it,
// as leader of which term.
type Transfer struct {
	From, Term uint64
}

// Cuts decides what a new transfer does to those in progress to the
// same member: it is refused while one from a leader of a later term
// streams; otherwise it cuts those from other members, whose partials it
// may then resume from (a newer leader's is the one that counts). A
// sender's own are not cut: the failure a cut reports would make it send
// again at once, cutting the next one.
func Cuts(active []Transfer, t Transfer) (cut []int, refused bool) {
	for _, a := range active {
		if a.Term > t.Term {
			return nil, true
		}
	}
	for i, a := range active {
		if a.From != t.From {
			cut = append(cut, i)
		}
	}
	return cut, false
}
