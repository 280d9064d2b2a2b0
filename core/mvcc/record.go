package mvcc

import (
	"encoding/binary"
	"unsafe"
)

// A record is one revision of one key, encoded as
//
//	uvarint keyLen | key | flags | uvarint mod | uvarint sub |
//	uvarint create | uvarint version | uvarint lease | value
//
// The key comes first so that the index can compare keys without decoding
// the rest. A record is held as a string aliasing slab memory.
type record = string

const flagTombstone = 1

// recHeader is the decoded fixed part of a record.
type recHeader struct {
	tombstone bool
	mod       Revision
	sub       int64
	create    Revision
	version   int64
	lease     LeaseID
}

// recKey returns the key of a record without decoding the rest.
func recKey(r record) string {
	if n := r[0]; n < 0x80 {
		return r[1 : 1+int(n)]
	}
	n, w := uvarintString(r)
	return r[w : w+int(n)]
}

// recMod returns the main revision of a record.
func recMod(r record) Revision {
	n, w := uvarintString(r)
	p := w + int(n) + 1
	m, _ := uvarintString(r[p:])
	return Revision(m)
}

// recTombstone reports whether the record is a delete.
func recTombstone(r record) bool {
	n, w := uvarintString(r)
	return r[w+int(n)]&flagTombstone != 0
}

// decodeRecord splits a record into its header, key and value.
func decodeRecord(r record) (h recHeader, key, value string) {
	n, w := uvarintString(r)
	key = r[w : w+int(n)]
	p := w + int(n)
	h.tombstone = r[p]&flagTombstone != 0
	p++
	var v uint64
	v, w = uvarintString(r[p:])
	h.mod, p = Revision(v), p+w
	v, w = uvarintString(r[p:])
	h.sub, p = int64(v), p+w
	v, w = uvarintString(r[p:])
	h.create, p = Revision(v), p+w
	v, w = uvarintString(r[p:])
	h.version, p = int64(v), p+w
	v, w = uvarintString(r[p:])
	h.lease, p = LeaseID(v), p+w
	return h, key, r[p:]
}

// recordSize is the encoded size of a record, without its length prefix.
func recordSize(h *recHeader, keyLen, valueLen int) int {
	return uvarintLen(uint64(keyLen)) + keyLen + 1 +
		uvarintLen(uint64(h.mod)) + uvarintLen(uint64(h.sub)) +
		uvarintLen(uint64(h.create)) + uvarintLen(uint64(h.version)) +
		uvarintLen(uint64(h.lease)) + valueLen
}

// encodeRecord writes a record into dst, which must be exactly
// recordSize bytes long.
func encodeRecord(dst []byte, h *recHeader, key, value []byte) {
	p := binary.PutUvarint(dst, uint64(len(key)))
	p += copy(dst[p:], key)
	var flags byte
	if h.tombstone {
		flags |= flagTombstone
	}
	dst[p] = flags
	p++
	p += binary.PutUvarint(dst[p:], uint64(h.mod))
	p += binary.PutUvarint(dst[p:], uint64(h.sub))
	p += binary.PutUvarint(dst[p:], uint64(h.create))
	p += binary.PutUvarint(dst[p:], uint64(h.version))
	p += binary.PutUvarint(dst[p:], uint64(h.lease))
	copy(dst[p:], value)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// uvarintString decodes a uvarint at the start of s. Records are written by
// this package only, so a malformed varint is a bug, not bad input.
func uvarintString(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < 0x80 {
			return x | uint64(b)<<shift, i + 1
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	panic("mvcc: truncated varint in record")
}

// bytesOf returns the bytes of a string without copying. The caller must
// not write to them: records are immutable.
func bytesOf(s string) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// stringOf views bytes as a string without copying, for lookups that do
// not keep the string.
func stringOf(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// sameRecord reports whether two records are the same bytes in memory, not
// merely equal: compaction uses it to recognise the copy the index holds.
func sameRecord(a, b record) bool {
	return len(a) == len(b) && unsafe.StringData(a) == unsafe.StringData(b)
}
