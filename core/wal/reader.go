package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
)

// Recovered is what Open read from the WAL.
type Recovered struct {
	// Meta is the meta given to Create.
	Meta []byte
	// HardState is the latest hard state written.
	HardState HardState
	// Entries is the log after Open's afterIndex: contiguous from
	// afterIndex+1, each index as last written. Data aliases the buffers the
	// segments were read into.
	Entries []Entry
	// TornTail describes the torn write recovery cut from the last segment,
	// or is empty.
	TornTail string
	// Repaired, set only under Options.UnsafeRepair, is the damage that was
	// cut from the last segment with everything after it.
	Repaired *Repair
}

// Repair is what Options.UnsafeRepair cut: the damaged record at Offset in
// File and everything after it, DroppedBytes written bytes in all.
type Repair struct {
	File         string
	Offset       int64
	DroppedBytes int64
	Reason       string
}

// Open recovers the WAL in opts.Dir and readies it for appending. Entries at
// or below afterIndex, the index a checkpoint covers, are not returned, and
// segments holding nothing above it are not read. A torn tail of the last
// segment is cut (truncated and synced) and reported; any other damage
// fails with an error wrapping ErrCorrupt, unless opts.UnsafeRepair cuts
// it. A directory without a WAL fails with an error wrapping
// fs.ErrNotExist.
func Open(fsys FS, opts Options, afterIndex uint64) (*WAL, *Recovered, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, nil, err
	}
	names, err := fsys.List(opts.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("wal: open %s: %w", opts.Dir, err)
	}
	var segs []segment
	for _, n := range names {
		if s, ok := parseSegmentName(n); ok {
			segs = append(segs, s)
		}
	}
	if len(segs) == 0 {
		return nil, nil, fmt.Errorf("wal: open %s: no segments: %w", opts.Dir, fs.ErrNotExist)
	}
	if err := removeTemps(fsys, opts.Dir, names); err != nil {
		return nil, nil, err
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].seq < segs[j].seq })
	if err := checkSequence(opts.Dir, segs, afterIndex); err != nil {
		return nil, nil, err
	}
	// The log before segment i ends at i's first index - 1, so every
	// segment before the last one whose first index is at most afterIndex+1
	// holds nothing the caller needs; its hard state copy is in the next.
	start := 0
	for i := len(segs) - 1; i >= 1; i-- {
		if segs[i].first == 0 || segs[i].first-1 <= afterIndex {
			start = i
			break
		}
	}

	r := &recovery{after: afterIndex, rec: &Recovered{}}
	var b []byte
	var size int64
	var res scanResult
	for i := start; i < len(segs); i++ {
		last := i == len(segs)-1
		b, size, res, err = r.readSegment(fsys, opts.Dir, segs[i], last)
		if last && opts.UnsafeRepair {
			res, err = r.repair(b, res, err)
		}
		if err != nil {
			return nil, nil, err
		}
	}

	last := segs[len(segs)-1]
	file := path.Join(opts.Dir, last.name())
	if res.torn {
		r.rec.TornTail = fmt.Sprintf("file %s: cut %d bytes at offset %d", file, writtenBytes(b[min(res.end, int64(len(b))):]), res.end)
	}
	if res.end < size {
		// Cut the torn tail or preallocated zeros, so that appending can
		// start at the end of the file.
		if err := truncateFile(fsys, file, res.end); err != nil {
			return nil, nil, err
		}
	}
	f, err := fsys.OpenAppend(file)
	if err != nil {
		return nil, nil, fmt.Errorf("wal: open %s for appending: %w", file, err)
	}
	if err := f.Preallocate(opts.SegmentBytes); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("wal: preallocate %s: %w", file, err)
	}
	w := &WAL{
		fs:        fsys,
		dir:       opts.Dir,
		segBytes:  opts.SegmentBytes,
		bug:       opts.Bug,
		meta:      append([]byte{}, r.rec.Meta...),
		segs:      segs,
		f:         f,
		off:       res.end,
		hs:        r.rec.HardState,
		lastIndex: afterIndex,
	}
	if n := len(r.rec.Entries); n > 0 {
		w.lastIndex = r.rec.Entries[n-1].Index
	}
	return w, r.rec, nil
}

func truncateFile(fsys FS, file string, size int64) error {
	f, err := fsys.OpenAppend(file)
	if err != nil {
		return fmt.Errorf("wal: cut tail of %s: %w", file, err)
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: cut tail of %s at %d: %w", file, size, err)
	}
	return nil
}

// recovery accumulates what the segments say, in order.
type recovery struct {
	after    uint64
	rec      *Recovered
	haveMeta bool
	// count is how many records of the current segment were read, and
	// headEnd where its valid header and hard state copy end (-1 before).
	count   int
	headEnd int64
}

// checkSequence requires the segments to chain: sequence numbers without a
// gap, and the oldest one starting no later than just after the
// checkpoint, so that no entry between the checkpoint and the log is
// missing. Segments are removed only oldest first and only once a
// checkpoint covers them, so a break is files lost or deleted.
func checkSequence(dir string, segs []segment, afterIndex uint64) error {
	for i := 1; i < len(segs); i++ {
		if prev := segs[i-1].seq; segs[i].seq != prev+1 {
			return corruptf(path.Join(dir, segs[i].name()), 0, "segment sequence %d follows %d: the segment of sequence %d (%016x-*%s) is missing",
				segs[i].seq, prev, prev+1, prev+1, segmentSuffix)
		}
	}
	if oldest := segs[0]; oldest.seq > 0 && oldest.first > afterIndex+1 {
		return corruptf(path.Join(dir, oldest.name()), 0, "the oldest segment (sequence %d) starts at index %d, but the newest checkpoint covers only up to index %d: entries %d to %d are missing (an older segment or the newest checkpoint was deleted)",
			oldest.seq, oldest.first, afterIndex, afterIndex+1, oldest.first-1)
	}
	return nil
}

// repair, under Options.UnsafeRepair, turns damage in the last segment
// after its header and hard state copy into a cut at the damaged record.
// Other errors, and damage a cut cannot leave a valid segment after, stay.
func (r *recovery) repair(b []byte, res scanResult, err error) (scanResult, error) {
	var ce *CorruptError
	if err == nil || !errors.As(err, &ce) || r.headEnd < 0 || ce.Offset < r.headEnd {
		return res, err
	}
	r.rec.Repaired = &Repair{File: ce.File, Offset: ce.Offset, DroppedBytes: writtenBytes(b[min(ce.Offset, int64(len(b))):]), Reason: ce.Reason}
	return scanResult{end: ce.Offset}, nil
}

// readSegment reads one segment and applies its records. It returns the
// file's bytes (but for a zero tail), also with a scan error, its size and
// where its data ends.
func (r *recovery) readSegment(fsys FS, dir string, s segment, last bool) ([]byte, int64, scanResult, error) {
	file := path.Join(dir, s.name())
	b, size, err := readSegmentFile(fsys, file, last)
	if err != nil {
		return nil, 0, scanResult{}, err
	}
	r.count, r.headEnd = 0, -1
	res, err := scanSegment(file, b, size, last, func(off int64, typ recordType, p []byte) error {
		r.count++
		switch count := r.count; {
		case count == 1:
			if typ != recSegmentHeader {
				return fmt.Errorf("segment starts with a %v record", typ)
			}
			meta, err := decodeSegmentHeader(p, s)
			if err != nil {
				return err
			}
			if !r.haveMeta {
				r.rec.Meta, r.haveMeta = append([]byte{}, meta...), true
			} else if !bytes.Equal(meta, r.rec.Meta) {
				return errors.New("segment meta differs from the earlier segments'")
			}
		case count == 2 && typ != recHardState:
			return fmt.Errorf("segment header is followed by a %v record, want its hard state copy", typ)
		case count == 2:
			if err := r.setHardState(p); err != nil {
				return err
			}
			r.headEnd = off + recordHeaderBytes + 1 + int64(len(p))
		case typ == recHardState:
			return r.setHardState(p)
		case typ == recEntry:
			e, err := decodeEntry(p)
			if err != nil {
				return err
			}
			return r.addEntry(e)
		default:
			return fmt.Errorf("unexpected %v record", typ)
		}
		return nil
	})
	if err != nil {
		return b, size, scanResult{}, err
	}
	if r.count < 2 {
		return nil, 0, scanResult{}, corruptf(file, res.end, "segment ends before its header and hard state copy")
	}
	return b, size, res, nil
}

func (r *recovery) setHardState(p []byte) error {
	hs, err := decodeHardState(p)
	if err != nil {
		return err
	}
	r.rec.HardState = hs
	return nil
}

// addEntry applies raft's overwrite rule: an entry at index i replaces
// every earlier-written entry at i or above.
func (r *recovery) addEntry(e Entry) error {
	ents := r.rec.Entries
	switch {
	case e.Index <= r.after:
		ents = ents[:0]
	case len(ents) == 0:
		if e.Index != r.after+1 {
			return fmt.Errorf("entry index %d leaves a gap after index %d", e.Index, r.after)
		}
		ents = append(ents, e)
	default:
		if lastIndex := ents[len(ents)-1].Index; e.Index > lastIndex+1 {
			return fmt.Errorf("entry index %d leaves a gap after index %d", e.Index, lastIndex)
		}
		ents = append(ents[:e.Index-r.after-1], e)
	}
	r.rec.Entries = ents
	return nil
}

// readBufferBytesMax is the unit in which the last segment is read, so that
// its preallocated zeros pass through one small buffer instead of being
// held in memory.
const readBufferBytesMax = 1 << 20

// readSegmentFile returns the file's size and its bytes, except that
// trailing zeros of the last segment are left out.
func readSegmentFile(fsys FS, file string, last bool) ([]byte, int64, error) {
	f, err := fsys.Open(file)
	if err != nil {
		return nil, 0, fmt.Errorf("wal: open %s: %w", file, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, 0, fmt.Errorf("wal: size of %s: %w", file, err)
	}
	if size > segmentFileBytesMax {
		return nil, 0, corruptf(file, 0, "segment size %d exceeds the largest a WAL writes (%d)", size, int64(segmentFileBytesMax))
	}
	readAt := func(p []byte, off int64) error {
		if n, err := f.ReadAt(p, off); n < len(p) {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("wal: read %s at %d: %w", file, off, err)
		}
		return nil
	}
	if !last {
		b := make([]byte, size)
		if err := readAt(b, 0); err != nil {
			return nil, 0, err
		}
		return b, size, nil
	}
	// Two passes: the first finds where the data ends, the second reads
	// it into a buffer of its size. Growing one buffer while reading, as
	// this did, copied the data about twice over and touched fresh pages
	// for twice its size: half of a restart's CPU after a compaction left
	// a checkpoint and a 37 MB tail in a 64 MB segment. The second pass
	// reads from the page cache the first one filled.
	chunk := make([]byte, min(size, readBufferBytesMax))
	var end int64
	for off := int64(0); off < size; {
		p := chunk[:min(size-off, readBufferBytesMax)]
		if err := readAt(p, off); err != nil {
			return nil, 0, err
		}
		off += int64(len(p))
		if !allZero(p) {
			end = off
		}
	}
	if end == 0 {
		return nil, size, nil
	}
	b := make([]byte, end)
	if err := readAt(b, 0); err != nil {
		return nil, 0, err
	}
	return b, size, nil
}
