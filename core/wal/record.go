package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

const (
	// recordHeaderBytes is the length, length crc and body crc in front of
	// every record.
	recordHeaderBytes = 12
	// RecordBytesMax caps a record's payload: a raft entry of 64 MiB plus
	// room for its framing fields. Larger payloads are refused on write and
	// are corruption on read.
	RecordBytesMax = 64<<20 + 64<<10
	// MetaBytesMax caps the opaque meta stored in every segment header.
	MetaBytesMax = 64 << 10
)

type recordType uint8

const (
	recSegmentHeader recordType = 1
	recEntry         recordType = 2
	recHardState     recordType = 3
)

func (t recordType) String() string {
	switch t {
	case recSegmentHeader:
		return "segment header"
	case recEntry:
		return "entry"
	case recHardState:
		return "hard state"
	}
	return fmt.Sprintf("unknown record type %d", uint8(t))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Entry is a raft log entry. Type is raftpb.EntryType's value.
type Entry struct {
	Term  uint64
	Index uint64
	Type  uint8
	Data  []byte
}

// HardState is raft's persistent state besides the log.
type HardState struct {
	Term   uint64
	Vote   uint64
	Commit uint64
}

// beginRecord reserves the header and writes the type; finishRecord fills
// the header once the payload is appended. Encoding in place keeps Save free
// of per-record allocations.
func beginRecord(buf []byte, typ recordType) ([]byte, int) {
	start := len(buf)
	buf = append(buf, make([]byte, recordHeaderBytes)...)
	return append(buf, byte(typ)), start
}

func finishRecord(buf []byte, start int) []byte {
	body := buf[start+recordHeaderBytes:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(body)-1))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start:start+4], castagnoli))
	binary.LittleEndian.PutUint32(buf[start+8:], crc32.Checksum(body, castagnoli))
	return buf
}

func uvarintBytes(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func entryPayloadBytes(e *Entry) int {
	return uvarintBytes(e.Term) + uvarintBytes(e.Index) + 1 + len(e.Data)
}

func appendEntryRecord(buf []byte, e *Entry) []byte {
	buf, start := beginRecord(buf, recEntry)
	buf = binary.AppendUvarint(buf, e.Term)
	buf = binary.AppendUvarint(buf, e.Index)
	buf = append(buf, e.Type)
	buf = append(buf, e.Data...)
	return finishRecord(buf, start)
}

func appendHardStateRecord(buf []byte, hs HardState) []byte {
	buf, start := beginRecord(buf, recHardState)
	buf = binary.AppendUvarint(buf, hs.Term)
	buf = binary.AppendUvarint(buf, hs.Vote)
	buf = binary.AppendUvarint(buf, hs.Commit)
	return finishRecord(buf, start)
}

var errShortPayload = errors.New("payload ends early")

// decodeEntry returns an entry whose Data aliases payload.
func decodeEntry(payload []byte) (Entry, error) {
	var e Entry
	var err error
	if e.Term, payload, err = takeUvarint(payload); err != nil {
		return e, fmt.Errorf("entry term: %w", err)
	}
	if e.Index, payload, err = takeUvarint(payload); err != nil {
		return e, fmt.Errorf("entry index: %w", err)
	}
	if len(payload) == 0 {
		return e, fmt.Errorf("entry type: %w", errShortPayload)
	}
	if e.Index == 0 {
		return e, errors.New("entry index 0")
	}
	e.Type = payload[0]
	e.Data = payload[1:len(payload):len(payload)]
	return e, nil
}

func decodeHardState(payload []byte) (HardState, error) {
	var hs HardState
	var err error
	for _, f := range []*uint64{&hs.Term, &hs.Vote, &hs.Commit} {
		if *f, payload, err = takeUvarint(payload); err != nil {
			return hs, fmt.Errorf("hard state: %w", err)
		}
	}
	if len(payload) != 0 {
		return hs, fmt.Errorf("hard state: %d trailing bytes", len(payload))
	}
	return hs, nil
}

func takeUvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n == 0 {
		return 0, nil, errShortPayload
	}
	if n < 0 {
		return 0, nil, errors.New("uvarint overflows 64 bits")
	}
	return v, b[n:], nil
}
