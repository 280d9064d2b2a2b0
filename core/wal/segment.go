package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

const (
	segmentMagic   = "detcdwal"
	segmentVersion = 1
	segmentSuffix  = ".wal"
	tmpSuffix      = ".tmp"
	// segmentNameBytes is len("%016x-%016x.wal").
	segmentNameBytes = 16 + 1 + 16 + len(segmentSuffix)
)

// segment names one segment file: its sequence number and the index of the
// first entry it was cut for (the log's last index + 1 at cut time; an
// overwrite may still write smaller indexes into it).
type segment struct {
	seq, first uint64
}

func (s segment) name() string {
	return fmt.Sprintf("%016x-%016x%s", s.seq, s.first, segmentSuffix)
}

// parseSegmentName accepts exactly the names segment.name produces, so that
// two spellings of one segment can never coexist.
func parseSegmentName(name string) (segment, bool) {
	if len(name) != segmentNameBytes || name[16] != '-' || !strings.HasSuffix(name, segmentSuffix) {
		return segment{}, false
	}
	seq, err1 := strconv.ParseUint(name[:16], 16, 64)
	first, err2 := strconv.ParseUint(name[17:33], 16, 64)
	s := segment{seq, first}
	if err1 != nil || err2 != nil || s.name() != name {
		return segment{}, false
	}
	return s, true
}

// isSegmentTemp reports a segment written under its temporary name, whose
// creation never finished.
func isSegmentTemp(name string) bool {
	base, ok := strings.CutSuffix(name, tmpSuffix)
	if !ok {
		return false
	}
	_, ok = parseSegmentName(base)
	return ok
}

func appendSegmentHeaderRecord(buf []byte, s segment, meta []byte) []byte {
	buf, start := beginRecord(buf, recSegmentHeader)
	buf = append(buf, segmentMagic...)
	buf = binary.AppendUvarint(buf, segmentVersion)
	buf = binary.AppendUvarint(buf, s.seq)
	buf = binary.AppendUvarint(buf, s.first)
	buf = append(buf, meta...)
	return finishRecord(buf, start)
}

// decodeSegmentHeader checks the header against the segment's file name and
// returns the meta, aliasing payload.
func decodeSegmentHeader(payload []byte, want segment) ([]byte, error) {
	if !bytes.HasPrefix(payload, []byte(segmentMagic)) {
		return nil, errors.New("bad segment magic")
	}
	p := payload[len(segmentMagic):]
	var version, seq, first uint64
	var err error
	for _, f := range []*uint64{&version, &seq, &first} {
		if *f, p, err = takeUvarint(p); err != nil {
			return nil, fmt.Errorf("segment header: %w", err)
		}
	}
	if version != segmentVersion {
		return nil, fmt.Errorf("unsupported segment format version %d", version)
	}
	if seq != want.seq || first != want.first {
		return nil, fmt.Errorf("segment header says sequence %d first index %d, file name says %d, %d", seq, first, want.seq, want.first)
	}
	return p, nil
}

// scanResult is where a segment's written data ends. torn is set when the
// bytes from end on are a torn write to be cut.
type scanResult struct {
	end  int64
	torn bool
}

// SectorBytes is the unit in which a disk writes: after a crash each sector
// of an unsynced write holds its new content or its old content (zeros, in
// a preallocated segment). Recovery assumes, as etcd does, that a torn
// write is a run of written sectors and then unwritten ones, so it tells a
// torn record from a damaged one by the sectors it spans.
const SectorBytes = 512

// scanSegment calls visit for each valid record of a segment file in order.
// b holds the file's first bytes and the rest, up to size, is zeros, so a
// preallocated tail costs no memory unless a record reaches into it. In the
// last segment the scan stops at zeros (preallocated, never written) and at
// a torn write: a final record that runs past the end of the file, or
// whose bytes from a sector boundary on read as zeros, with nothing but
// zeros after it. A complete record that fails its checksum is damage, not
// a torn write, wherever it is. In any other segment the records must fill
// the file exactly. Errors from visit become corruption at the record's
// offset.
func scanSegment(file string, b []byte, size int64, last bool, visit func(off int64, typ recordType, payload []byte) error) (scanResult, error) {
	need := func(end int64) {
		if end > int64(len(b)) {
			b = append(b, make([]byte, end-int64(len(b)))...)
		}
	}
	off := int64(0)
	for {
		if off == size {
			return scanResult{end: off}, nil
		}
		if size-off < recordHeaderBytes {
			need(size)
			switch {
			case !last:
				return scanResult{}, corruptf(file, off, "%d stray bytes at the end of a segment that is not the last", size-off)
			case allZero(b[off:]):
				return scanResult{end: off}, nil
			}
			return scanResult{end: off, torn: true}, nil
		}
		need(off + recordHeaderBytes)
		h := b[off : off+recordHeaderBytes]
		if allZero(h) {
			if !last {
				return scanResult{}, corruptf(file, off, "zero record header in a segment that is not the last")
			}
			// Zeros end the data only if nothing follows: synced records
			// after a hole mean the hole is damage, not preallocation.
			if i := firstNonZero(b[off:]); i >= 0 {
				return scanResult{}, corruptf(file, off, "zero record header followed by data at offset %d", off+int64(i))
			}
			return scanResult{end: off}, nil
		}
		n := binary.LittleEndian.Uint32(h[0:4])
		if crc32.Checksum(h[0:4], castagnoli) != binary.LittleEndian.Uint32(h[4:8]) {
			if last && tornRecord(b, off+recordHeaderBytes) {
				return scanResult{end: off, torn: true}, nil
			}
			return scanResult{}, corruptf(file, off, "record length checksum mismatch (not a torn write: no unwritten sector in the record header)")
		}
		if n > RecordBytesMax {
			return scanResult{}, corruptf(file, off, "record length %d exceeds RecordBytesMax %d", n, RecordBytesMax)
		}
		recEnd := off + recordHeaderBytes + 1 + int64(n)
		if recEnd > size {
			if last {
				return scanResult{end: off, torn: true}, nil
			}
			return scanResult{}, corruptf(file, off, "record of %d bytes runs past the end of the file (size %d)", recEnd-off, size)
		}
		need(recEnd)
		body := b[off+recordHeaderBytes : recEnd]
		if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(h[8:12]) {
			if last && tornRecord(b, recEnd) {
				return scanResult{end: off, torn: true}, nil
			}
			return scanResult{}, corruptf(file, off, "record checksum mismatch in a complete record of %d bytes (not a torn write: no unwritten sector, or data after it)", recEnd-off)
		}
		if err := visit(off, recordType(body[0]), body[1:]); err != nil {
			return scanResult{}, corruptf(file, off, "%v", err)
		}
		off = recEnd
	}
}

// tornRecord reports whether a damaged record that ends at end (or whose
// header does) can be a torn write: some sector it reaches into, from a
// sector boundary on, is all zeros, and so is everything after it. b is the
// whole file but for trailing zeros, and the record's first byte is not
// zero.
func tornRecord(b []byte, end int64) bool {
	written := writtenBytes(b)
	unwrittenFrom := (written + SectorBytes - 1) / SectorBytes * SectorBytes
	return unwrittenFrom < end
}

func allZero(b []byte) bool { return firstNonZero(b) < 0 }

// firstNonZero returns the index of the first non-zero byte of b, or -1. It
// may scan a whole preallocated segment, so it goes a word at a time.
func firstNonZero(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:]) != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if b[i] != 0 {
			return i
		}
	}
	return -1
}

// writtenBytes is the length of b without its trailing zeros: how much of a
// cut tail was actually written, for the report.
func writtenBytes(b []byte) int64 {
	i := len(b)
	for i > 0 && b[i-1] == 0 {
		i--
	}
	return int64(i)
}
