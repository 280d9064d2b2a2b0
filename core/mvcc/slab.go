package mvcc

import (
	"encoding/binary"
	"unsafe"
)

// SlabBytes is the size of a slab. A record larger than this gets a slab
// of its own.
const SlabBytes = 1 << 20

// slab is a pointer-free run of length-prefixed records. Only its owner
// appends to buf, and never beyond cap(buf), so the backing array never
// moves and record strings that alias it stay valid.
type slab struct {
	buf []byte
	// first is the revision of the first record written to the slab; the
	// hot log uses it to find where a revision starts.
	first Revision
	// firstOrd is the ordinal of the slab's first record in the hot log.
	firstOrd uint64
}

// put writes a record of size n, prefixed with its length, and returns the
// record's bytes to be filled in and the offset of the length prefix. ok
// is false when the slab is too full.
func (s *slab) put(n int) (dst []byte, off int, ok bool) {
	total := uvarintLen(uint64(n)) + n
	off = len(s.buf)
	if off+total > cap(s.buf) {
		return nil, 0, false
	}
	s.buf = s.buf[:off+total]
	p := off + binary.PutUvarint(s.buf[off:], uint64(n))
	return s.buf[p : p+n], off, true
}

// newSlab allocates a slab that can hold at least one record of size n.
func newSlab(n int) *slab {
	c := SlabBytes
	if need := uvarintLen(uint64(n)) + n; need > c {
		c = need
	}
	return &slab{buf: make([]byte, 0, c)}
}

// asRecord turns freshly written record bytes into the immutable string the
// index holds.
func asRecord(b []byte) record {
	return unsafe.String(&b[0], len(b))
}

// slabRecords iterates the records of a slab region from offset off. fn
// returns false to stop; the offset after the last visited record is
// returned so that a scan can resume.
func slabRecords(buf []byte, off int, fn func(r record, next int) bool) int {
	for off < len(buf) {
		n, w := binary.Uvarint(buf[off:])
		if w <= 0 {
			panic("mvcc: corrupt slab length prefix")
		}
		start := off + w
		end := start + int(n)
		if !fn(asRecord(buf[start:end]), end) {
			return off
		}
		off = end
	}
	return off
}

// slabSeries is an append-only list of slabs.
type slabSeries struct {
	slabs []*slab
	// seq0 is the sequence number of slabs[0]: slabs are numbered in the
	// order they were added.
	seq0 uint64
	// bytes is the capacity of every slab in the series: what the series
	// costs in memory.
	bytes int64
}

// append writes a record of size n and returns its bytes to fill in, and
// the offset of its length prefix in the last slab; fresh says a new
// slab was started for it.
func (ss *slabSeries) append(n int, first Revision) (dst []byte, off int, fresh bool) {
	if k := len(ss.slabs); k > 0 {
		if dst, off, ok := ss.slabs[k-1].put(n); ok {
			return dst, off, false
		}
	}
	s := newSlab(n)
	s.first = first
	ss.slabs = append(ss.slabs, s)
	ss.bytes += int64(cap(s.buf))
	dst, off, _ = s.put(n)
	return dst, off, true
}

// lastSeq is the sequence number of the last slab.
func (ss *slabSeries) lastSeq() uint64 { return ss.seq0 + uint64(len(ss.slabs)) - 1 }

// adopt appends an existing, already filled region as a read-only slab.
// Checkpoint loading uses it so that file memory becomes slab memory
// without a copy.
func (ss *slabSeries) adopt(buf []byte, first Revision) {
	if len(buf) == 0 {
		return
	}
	ss.slabs = append(ss.slabs, &slab{buf: buf[:len(buf):len(buf)], first: first})
	ss.bytes += int64(len(buf))
}

// dropFront removes the first k slabs.
func (ss *slabSeries) dropFront(k int) {
	for i := 0; i < k; i++ {
		ss.bytes -= int64(cap(ss.slabs[i].buf))
		ss.slabs[i] = nil
	}
	ss.slabs = append(ss.slabs[:0], ss.slabs[k:]...)
	ss.seq0 += uint64(k)
}

// frozen returns a copy of the series' slab headers as they are now, for a
// view: later appends do not show in it.
func (ss *slabSeries) frozen() []slab {
	out := make([]slab, len(ss.slabs))
	for i, s := range ss.slabs {
		out[i] = *s
	}
	return out
}
