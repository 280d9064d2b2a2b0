package mvcc

import "google.golang.org/protobuf/encoding/protowire"

// etcd checks its space quota against the size of its bolt database file,
// and reports that size, and the part of it in use, in Status. detcd holds
// the key space in memory, whose size says nothing about etcd's file, so
// the store keeps a model of that file instead: the bolt pages each
// revision etcd stores takes, its share of them. etcd stores every
// revision as one element of its key bucket, keyed by the revision, so the
// bucket only ever grows at its end and bolt packs its leaves to etcd's
// fill percent: as many elements as fit in 90% of a page, at least two per
// leaf, a leaf that outgrows a page spilling into more whole pages; and
// each leaf costs an element in a branch page. Measured on etcd 3.7.3
// (tests/quota_diff_test.go), this is within a few percent of etcd's file
// for values up to 10 KiB; above, bolt's free space between large leaves
// makes etcd's file grow up to a sixth faster.
const (
	boltPageBytes       = 4096
	boltPageHeaderBytes = 16
	// boltElementBytes is the header of a leaf or branch element.
	boltElementBytes = 16
	// boltRevKeyBytes is etcd's key bucket key: main revision, '_', sub
	// revision, and a tombstone's 't'.
	boltRevKeyBytes = 17
	// boltFillBytes is how full bolt packs a page of etcd's key bucket:
	// etcd sets the bucket's fill percent to 90% for its appends.
	boltFillBytes      = boltPageBytes * 9 / 10
	boltMinKeysPerLeaf = 2
	// boltBranchBytes is the share of a branch page one leaf takes.
	boltBranchBytes = boltPageBytes / ((boltFillBytes - boltPageHeaderBytes) / (boltElementBytes + boltRevKeyBytes))
)

// boltBytes is the share of etcd's database file that a record takes.
func boltBytes(r record) int64 {
	h, key, value := decodeRecord(r)
	n := boltElementBytes + boltRevKeyBytes + keyValueSize(&h, len(key), len(value))
	if h.tombstone {
		n++
	}
	perLeaf := max((boltFillBytes-boltPageHeaderBytes)/n, boltMinKeysPerLeaf)
	pages := (perLeaf*n + boltPageHeaderBytes + boltPageBytes - 1) / boltPageBytes
	return int64((pages*boltPageBytes + boltBranchBytes) / perLeaf)
}

// keyValueSize is the size of the mvccpb.KeyValue etcd stores for a
// revision: a tombstone's holds only the key. Its fields are 1 to 6, each
// with a one-byte tag, left out when zero.
func keyValueSize(h *recHeader, keyLen, valueLen int) int {
	n := 1 + protowire.SizeBytes(keyLen)
	if h.tombstone {
		return n
	}
	for _, v := range []uint64{uint64(h.create), uint64(h.mod), uint64(h.version), uint64(h.lease)} {
		if v != 0 {
			n += 1 + protowire.SizeVarint(v)
		}
	}
	if valueLen > 0 {
		n += 1 + protowire.SizeBytes(valueLen)
	}
	return n
}

// backendAdd accounts for a record etcd's database now holds.
func (s *Store) backendAdd(r record) {
	s.backendInUse += boltBytes(r)
	s.backendSize = max(s.backendSize, s.backendInUse)
}

// backendDrop accounts for a record compaction removed: its pages are
// free, but the file keeps its size until a defragmentation.
func (s *Store) backendDrop(r record) { s.backendInUse -= boltBytes(r) }
