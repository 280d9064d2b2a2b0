package mvcc

import (
	"encoding/binary"
	"slices"
)

// Older revisions are found through links, not through heap objects. Every
// record appended to the hot log gets the next ordinal and a link: where
// the record lies and the ordinal of the key's revision before it. Links
// live in pointer-free chunks, so a key space of a million revisions costs
// the garbage collector a few hundred objects to mark instead of a million
// chain nodes (it marked them on every cycle, which made the collector
// the largest cost of a put on a grown store).
//
// Links and records are immutable once written, and the tables that find
// them are only appended to or replaced, never changed in place, so a view
// copies the hotIndex (a few words) and reads it from any goroutine while
// the store appends.

// noOrd marks a record without an ordinal: a cold record, or the end of a
// key's links.
const noOrd = ^uint64(0)

// linkChunkLen is the links per chunk: 64 KiB of pointer-free memory.
const linkChunkLen = 4096

// posSeqShift splits a link's position into the slab's sequence number
// (high bits) and the offset of the record's length prefix in the slab.
const posSeqShift = 40

type link struct {
	pos  uint64
	prev uint64
}

type linkChunk [linkChunkLen]link

// hotIndex finds hot records by ordinal.
type hotIndex struct {
	chunks []*linkChunk
	// base is the ordinal of chunks[0][0]; first is the oldest ordinal
	// whose record is still in memory; next is the ordinal the next hot
	// record gets.
	base, first, next uint64
	// bufs are the hot slabs' buffers to their full capacity, bufs[0]
	// being slab number bufSeq.
	bufs   [][]byte
	bufSeq uint64
}

// add records the link of the next hot record and returns its ordinal.
func (hx *hotIndex) add(seq uint64, off int, prev uint64) uint64 {
	o := hx.next
	i := o - hx.base
	if i/linkChunkLen == uint64(len(hx.chunks)) {
		hx.chunks = append(hx.chunks, new(linkChunk))
	}
	hx.chunks[i/linkChunkLen][i%linkChunkLen] = link{pos: seq<<posSeqShift | uint64(off), prev: prev}
	hx.next++
	return o
}

// addSlab makes a new hot slab's buffer findable; its sequence number is
// the next one.
func (hx *hotIndex) addSlab(buf []byte) {
	hx.bufs = append(hx.bufs, buf[:cap(buf)])
}

// dropBefore forgets the slabs before sequence number seq and the links
// before ordinal o, which no index item refers to any more. The tables
// are copied, not shifted: views still read the old ones.
func (hx *hotIndex) dropBefore(seq, o uint64) {
	if n := seq - hx.bufSeq; n > 0 {
		hx.bufs = slices.Clone(hx.bufs[n:])
		hx.bufSeq = seq
	}
	hx.first = o
	if n := (o - hx.base) / linkChunkLen; n > 0 {
		hx.chunks = slices.Clone(hx.chunks[n:])
		hx.base += n * linkChunkLen
	}
}

func (hx *hotIndex) link(o uint64) link {
	i := o - hx.base
	return hx.chunks[i/linkChunkLen][i%linkChunkLen]
}

// record returns the hot record with ordinal o.
func (hx *hotIndex) record(o uint64) record {
	pos := hx.link(o).pos
	buf := hx.bufs[pos>>posSeqShift-hx.bufSeq][pos&(1<<posSeqShift-1):]
	n, w := binary.Uvarint(buf)
	return asRecord(buf[w : w+int(n)])
}

// older returns the record of the key of it before the record with
// ordinal o (noOrd for a cold one, which has none before it), and that
// record's ordinal; ok is false at the end of the chain. Links are
// followed to records above the item's low revision; below it, the
// chain's end is the item's cold record, if any.
func (hx *hotIndex) older(it item, o uint64) (r record, ord uint64, ok bool) {
	if o == noOrd {
		return "", noOrd, false
	}
	if p := hx.link(o).prev; p != noOrd && p >= hx.first {
		if r := hx.record(p); recMod(r) > it.low {
			return r, p, true
		}
	}
	if it.cold != "" {
		return it.cold, noOrd, true
	}
	return "", noOrd, false
}

// at returns the key's record at revision rev: the newest with a main
// revision at or below rev. ok is false if there is none or it is a
// tombstone, that is, if the key did not exist at rev.
func (hx *hotIndex) at(it item, rev Revision) (r record, ok bool) {
	for r, o, more := it.rec, it.ord, true; more; r, o, more = hx.older(it, o) {
		if recMod(r) <= rev {
			return r, !recTombstone(r)
		}
	}
	return "", false
}

// kept returns the record a compaction at rev keeps of the key: its newest
// at or below rev, unless that is a tombstone older than rev. ok is false
// if it keeps none.
func (hx *hotIndex) kept(it item, rev Revision) (r record, ok bool) {
	r, live := hx.at(it, rev)
	return r, live || r != "" && recMod(r) == rev
}

// records returns the key's chain newest first.
func (hx *hotIndex) records(it item) []record {
	var out []record
	for r, o, more := it.rec, it.ord, true; more; r, o, more = hx.older(it, o) {
		out = append(out, r)
	}
	return out
}
