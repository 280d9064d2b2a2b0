package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

// rawRecord frames payload under a valid header, for records the WAL
// itself would never write.
func rawRecord(typ recordType, payload []byte) []byte {
	buf, start := beginRecord(nil, typ)
	return finishRecord(append(buf, payload...), start)
}

func TestScanSegment(t *testing.T) {
	head := appendSegmentHeaderRecord(nil, segment{}, []byte("m"))
	hs := appendHardStateRecord(nil, HardState{Term: 1})
	data := bytes.Repeat([]byte{0}, 64)
	data[0] = 1
	zeroEnding := appendEntryRecord(nil, &Entry{Term: 1, Index: 1, Data: data})
	two := cat(head, hs)
	badBody := cat(head, flipped(hs, len(hs)-1))
	hugeLen := make([]byte, recordHeaderBytes)
	binary.LittleEndian.PutUint32(hugeLen, RecordBytesMax+1)
	binary.LittleEndian.PutUint32(hugeLen[4:], crc32.Checksum(hugeLen[:4], castagnoli))
	badLenCRC := flipped(hs, 5)
	// spanning is a record across the first sector boundary; torn zeros
	// its bytes from that boundary on, as a crash that wrote only the
	// first sector would.
	spanning := cat(head, appendEntryRecord(nil, &Entry{Term: 1, Index: 1, Data: bytes.Repeat([]byte("x"), 600)}))
	torn := func(b []byte) []byte {
		c := append([]byte{}, b...)
		clear(c[SectorBytes:])
		return c
	}
	// headerAcross starts a record 6 bytes before the boundary, so the
	// boundary splits its header.
	filler := appendEntryRecord(nil, &Entry{Term: 1, Index: 1, Data: bytes.Repeat([]byte("f"), SectorBytes-6-len(head)-16)})
	headerAcross := cat(head, filler, appendEntryRecord(nil, &Entry{Term: 1, Index: 2, Data: []byte("after")}))

	tests := []struct {
		name string
		b    []byte
		// size beyond len(b) is zeros
		size     int
		last     bool
		wantEnd  int
		wantTorn bool
		wantErr  bool
	}{
		{name: "exact", b: two, last: false, wantEnd: len(two)},
		{name: "exact last", b: two, last: true, wantEnd: len(two)},
		{name: "zeros after, last", b: cat(two, make([]byte, 40)), last: true, wantEnd: len(two)},
		{name: "implicit zeros after, last", b: two, size: len(two) + 1000, last: true, wantEnd: len(two)},
		{name: "few zeros after, last", b: cat(two, make([]byte, 5)), last: true, wantEnd: len(two)},
		{name: "zeros after, not last", b: cat(two, make([]byte, 40)), wantErr: true},
		{name: "implicit zeros after, not last", b: two, size: len(two) + 1000, wantErr: true},
		{name: "few bytes after, last", b: cat(two, []byte{1, 2}), last: true, wantEnd: len(two), wantTorn: true},
		{name: "few bytes after, not last", b: cat(two, []byte{1, 2}), wantErr: true},
		{name: "cut payload, last", b: cat(head, hs[:len(hs)-2]), last: true, wantEnd: len(head), wantTorn: true},
		{name: "cut payload, not last", b: cat(head, hs[:len(hs)-2]), wantErr: true},
		{name: "bad final body, last", b: badBody, last: true, wantErr: true},
		{name: "bad final body then zeros, last", b: cat(badBody, make([]byte, 30)), last: true, wantErr: true},
		{name: "final record torn at a sector boundary", b: torn(spanning), size: 2 * SectorBytes, last: true, wantEnd: len(head), wantTorn: true},
		{name: "final record torn at a sector boundary, not last", b: torn(spanning), wantErr: true},
		{name: "final record across a sector boundary with a flipped bit", b: flipped(spanning, len(spanning)-3), last: true, wantErr: true},
		{name: "final record across a sector boundary with a flipped bit before it", b: flipped(spanning, SectorBytes-3), last: true, wantErr: true},
		{name: "zero sector in a record with data after it", b: cat(torn(spanning), []byte{1}), last: true, wantErr: true},
		{name: "header torn at a sector boundary", b: torn(headerAcross), last: true, wantEnd: len(head) + len(filler), wantTorn: true},
		{name: "bad body then a record, last", b: cat(badBody, hs), last: true, wantErr: true},
		{name: "bad final body, not last", b: badBody, wantErr: true},
		{name: "bad length crc then zeros, last", b: cat(head, badLenCRC[:recordHeaderBytes], make([]byte, 20)), last: true, wantErr: true},
		{name: "bad length crc then data, last", b: cat(head, badLenCRC), last: true, wantErr: true},
		{name: "length over max", b: cat(head, hugeLen, make([]byte, 100)), last: true, wantErr: true},
		{name: "record ending in the zero tail", b: cat(head, zeroEnding[:len(zeroEnding)-60]), size: len(head) + len(zeroEnding) + 100, last: true, wantEnd: len(head) + len(zeroEnding)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := int64(max(tt.size, len(tt.b)))
			res, err := scanSegment("f", tt.b, size, tt.last, func(int64, recordType, []byte) error { return nil })
			if tt.wantErr {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("scan = %+v, %v; want ErrCorrupt", res, err)
				}
				return
			}
			if err != nil || res.end != int64(tt.wantEnd) || res.torn != tt.wantTorn {
				t.Fatalf("scan = %+v, %v; want end %d torn %v", res, err, tt.wantEnd, tt.wantTorn)
			}
		})
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func flipped(b []byte, i int) []byte {
	c := append([]byte{}, b...)
	c[i] ^= 0x10
	return c
}

func TestDecodePayloads(t *testing.T) {
	seg := segment{seq: 3, first: 10}
	header := func(magic string, version, seq, first uint64) []byte {
		p := []byte(magic)
		for _, v := range []uint64{version, seq, first} {
			p = binary.AppendUvarint(p, v)
		}
		return append(p, "meta"...)
	}
	tests := []struct {
		name    string
		decode  func() error
		wantErr bool
	}{
		{"entry", func() error { _, err := decodeEntry([]byte{1, 2, 0, 'x'}); return err }, false},
		{"entry without data", func() error { _, err := decodeEntry([]byte{1, 2, 0}); return err }, false},
		{"entry without type", func() error { _, err := decodeEntry([]byte{1, 2}); return err }, true},
		{"entry index 0", func() error { _, err := decodeEntry([]byte{1, 0, 0}); return err }, true},
		{"entry bad uvarint", func() error { _, err := decodeEntry(bytes.Repeat([]byte{0xff}, 11)); return err }, true},
		{"entry empty", func() error { _, err := decodeEntry(nil); return err }, true},
		{"hard state", func() error { _, err := decodeHardState([]byte{1, 2, 3}); return err }, false},
		{"hard state short", func() error { _, err := decodeHardState([]byte{1, 2}); return err }, true},
		{"hard state trailing", func() error { _, err := decodeHardState([]byte{1, 2, 3, 4}); return err }, true},
		{"header", func() error { _, err := decodeSegmentHeader(header(segmentMagic, 1, 3, 10), seg); return err }, false},
		{"header magic", func() error { _, err := decodeSegmentHeader(header("detcdxxx", 1, 3, 10), seg); return err }, true},
		{"header version", func() error { _, err := decodeSegmentHeader(header(segmentMagic, 2, 3, 10), seg); return err }, true},
		{"header seq", func() error { _, err := decodeSegmentHeader(header(segmentMagic, 1, 4, 10), seg); return err }, true},
		{"header first", func() error { _, err := decodeSegmentHeader(header(segmentMagic, 1, 3, 11), seg); return err }, true},
		{"header short", func() error { _, err := decodeSegmentHeader([]byte(segmentMagic), seg); return err }, true},
	}
	for _, tt := range tests {
		if err := tt.decode(); (err != nil) != tt.wantErr {
			t.Errorf("%s: err %v, wantErr %v", tt.name, err, tt.wantErr)
		}
	}
	if meta, err := decodeSegmentHeader(header(segmentMagic, 1, 3, 10), seg); err != nil || string(meta) != "meta" {
		t.Errorf("meta %q, %v", meta, err)
	}
}

func TestSegmentNames(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
		want segment
	}{
		{"0000000000000000-0000000000000000.wal", true, segment{}},
		{"00000000000000ff-0000000000000a01.wal", true, segment{255, 2561}},
		{"00000000000000FF-0000000000000a01.wal", false, segment{}},
		{"00000000000000ff-0000000000000a01.wal.tmp", false, segment{}},
		{"00000000000000ff_0000000000000a01.wal", false, segment{}},
		{"0ff-a01.wal", false, segment{}},
		{"00000000000000fg-0000000000000a01.wal", false, segment{}},
	}
	for _, tt := range tests {
		s, ok := parseSegmentName(tt.name)
		if ok != tt.ok || s != tt.want {
			t.Errorf("parseSegmentName(%q) = %+v, %v", tt.name, s, ok)
		}
		if ok && s.name() != tt.name {
			t.Errorf("%+v.name() = %q", s, s.name())
		}
	}
	if !isSegmentTemp("0000000000000001-0000000000000002.wal.tmp") || isSegmentTemp("x.tmp") {
		t.Error("isSegmentTemp")
	}
}
