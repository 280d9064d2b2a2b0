package mvcc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/detcd/detcd/core/internal/planted"
)

// The key space in a checkpoint:
//
//	uvarint format | uvarint rev | uvarint compactRev+1 |
//	cold section | hot section
//
// A section is a run of length-prefixed records ended by a zero length
// byte, in the slab format, so that a loaded checkpoint's memory serves as
// slabs without a copy. The cold section holds, in key order, each key's
// newest record at or below the compaction point unless it is a tombstone
// below it; the hot section every record from the compaction point on in
// revision order. The content depends only on the logical state, never on
// how far physical compaction has got.

const checkpointFormat = 1

// ErrBadCheckpoint is returned for checkpoint content that does not decode.
var ErrBadCheckpoint = errors.New("mvcc: malformed checkpoint")

// writeToBufferBytes batches WriteTo's many small record writes: its
// callers buffer again (a checkpoint file's writer, a bytes.Buffer), so
// this only needs to make their per-write work (checksums) run on large
// spans, and a megabyte per checkpoint was the simulator's largest
// allocation.
const writeToBufferBytes = 64 << 10

// WriteTo writes the view's key space. The view must come from Snapshot.
// It runs off the loop: it only reads the immutable view.
func (v *View) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, writeToBufferBytes)
	cw := &countWriter{w: bw}
	var hdr []byte
	hdr = binary.AppendUvarint(hdr, checkpointFormat)
	hdr = binary.AppendUvarint(hdr, uint64(v.rev))
	hdr = binary.AppendUvarint(hdr, uint64(v.compactRev+1))
	cw.Write(hdr)
	var lp [binary.MaxVarintLen64]byte
	put := func(r record) {
		n := binary.PutUvarint(lp[:], uint64(len(r)))
		cw.Write(lp[:n])
		io.WriteString(cw, r)
	}
	v.tree.Ascend(func(it item) bool {
		if s, ok := v.hx.kept(it, v.compactRev); ok {
			put(s)
		}
		return cw.err == nil
	})
	cw.Write([]byte{0})
	// The hot section starts at the compaction revision, whose changes
	// watchers may still start from; the cold section holds them too.
	v.scanHot(v.compactRev-1, func(r record) bool {
		if recMod(r) > v.rev || planted.Enabled && v.bug == planted.MVCCCheckpointDropsLast && recMod(r) == v.rev {
			return false // planted variant: the newest revision is left out
		}
		put(r)
		return cw.err == nil
	})
	cw.Write([]byte{0})
	if cw.err != nil {
		return cw.n, cw.err
	}
	return cw.n, bw.Flush()
}

type countWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

// WriteString writes a record without the copy io.WriteString makes for
// a writer without it: a snapshot to a peer writes the whole store, and
// on a large heap those copies pile up as garbage while it streams.
func (c *countWriter) WriteString(s string) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	return c.counted(c.w.WriteString(s))
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	return c.counted(c.w.Write(p))
}

// counted adds a write's bytes and keeps its error, which ends writing.
func (c *countWriter) counted(n int, err error) (int, error) {
	c.n += int64(n)
	c.err = err
	return n, err
}

// Load rebuilds a store from checkpoint content written by WriteTo. The
// store's slabs alias data, which the caller must not change afterwards.
// It returns how many bytes of data the key space took.
func Load(data []byte) (*Store, int, error) {
	rev, compactRev, p, err := readHeader(data)
	if err != nil {
		return nil, 0, err
	}
	s := New()
	s.rev, s.compactRev = rev, compactRev
	s.physRev = s.compactRev
	coldStart := p
	var prev item
	coldEnd, err := checkSection(data, p, func(r record, _ int) error {
		if m := recMod(r); m > s.compactRev || recTombstone(r) && m != s.compactRev {
			return fmt.Errorf("%w: cold record at revision %d", ErrBadCheckpoint, recMod(r))
		}
		it := coldItem(r, s.compactRev)
		// WriteTo writes the cold section in key order: strictly
		// ascending keys also rule out a key twice.
		if prev.rec != "" && !itemLess(prev, it) {
			return fmt.Errorf("%w: cold section out of key order or a key twice", ErrBadCheckpoint)
		}
		prev = it
		s.tree.ReplaceOrInsert(it)
		s.backendAdd(r)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	hotStart := coldEnd + 1
	last := s.compactRev
	// The hot section becomes the first hot slab, number 0.
	hotEnd, err := checkSection(data, hotStart, func(r record, off int) error {
		m := recMod(r)
		if m < s.compactRev || m > s.rev || m < last {
			return fmt.Errorf("%w: hot record at revision %d out of order", ErrBadCheckpoint, m)
		}
		last = m
		if m == s.compactRev {
			// Indexed from the cold section; kept here for watchers.
			s.links.add(0, off-hotStart, noOrd)
			return nil
		}
		s.backendAdd(r)
		it, ok := s.tree.Get(probe(recKey(r)))
		if !ok {
			it = item{ord: noOrd}
		}
		s.tree.ReplaceOrInsert(it.pushed(r, s.links.add(0, off-hotStart, it.ord)))
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	s.cold.adopt(data[coldStart:coldEnd], 0)
	s.coldLive = int64(coldEnd - coldStart)
	if hotEnd > hotStart {
		first := recMod(firstRecord(data[hotStart:hotEnd]))
		s.hot.adopt(data[hotStart:hotEnd], first)
		s.links.addSlab(s.hot.slabs[0].buf)
	}
	return s, hotEnd + 1, nil
}

// readHeader reads the header of checkpoint content; its sections start
// at p.
func readHeader(data []byte) (rev, compactRev Revision, p int, err error) {
	next := func() uint64 {
		if err != nil {
			return 0
		}
		v, w := binary.Uvarint(data[p:])
		if w <= 0 {
			err = fmt.Errorf("%w: bad varint at offset %d", ErrBadCheckpoint, p)
			return 0
		}
		p += w
		return v
	}
	format, r, c1 := next(), next(), next()
	if err == nil && format != checkpointFormat {
		err = fmt.Errorf("%w: unknown format %d", ErrBadCheckpoint, format)
	}
	return Revision(r), Revision(c1) - 1, p, err
}

// CheckHeader checks that data starts with the header of checkpoint
// content as WriteTo writes it.
func CheckHeader(data []byte) error {
	_, _, _, err := readHeader(data)
	return err
}

// CheckFraming checks that data starts with checkpoint content as WriteTo
// writes it, framed right: its header, then its two sections of valid
// records, each ending with its marker. It builds nothing, so it takes a
// small part of Load's time; what only Load checks (the records' keys and
// revisions) may still fail there.
func CheckFraming(data []byte) error {
	_, _, p, err := readHeader(data)
	if err != nil {
		return err
	}
	none := func(record, int) error { return nil }
	coldEnd, err := checkSection(data, p, none)
	if err != nil {
		return err
	}
	_, err = checkSection(data, coldEnd+1, none)
	return err
}

func firstRecord(buf []byte) record {
	var r record
	slabRecords(buf, 0, func(x record, _ int) bool { r = x; return false })
	return r
}

// checkSection validates the records of a section starting at off, calls
// fn on each with the offset of its length prefix, and returns the offset
// of the section's end marker.
func checkSection(data []byte, off int, fn func(r record, off int) error) (int, error) {
	for {
		if off >= len(data) {
			return 0, fmt.Errorf("%w: section runs past the end", ErrBadCheckpoint)
		}
		n, w := binary.Uvarint(data[off:])
		if w <= 0 || off+w+int(n) > len(data) {
			return 0, fmt.Errorf("%w: bad record length at offset %d", ErrBadCheckpoint, off)
		}
		if n == 0 {
			return off, nil
		}
		start := off + w
		b := data[start : start+int(n)]
		if !validRecord(b) {
			return 0, fmt.Errorf("%w: bad record at offset %d", ErrBadCheckpoint, start)
		}
		if err := fn(asRecord(b), off); err != nil {
			return 0, err
		}
		off = start + int(n)
	}
}

// validRecord checks that a record decodes within its bounds, so that the
// decoding helpers, which trust records, never run off the end.
func validRecord(b []byte) bool {
	kl, w := binary.Uvarint(b)
	if w <= 0 || kl == 0 || uint64(len(b)-w) < kl+1 {
		return false
	}
	p := w + int(kl) + 1
	for range 5 {
		_, w = binary.Uvarint(b[p:])
		if w <= 0 {
			return false
		}
		p += w
	}
	return true
}
