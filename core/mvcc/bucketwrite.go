package mvcc

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// bucketWriteBufBytes is the buffer between a BucketWriter and its writer.
const bucketWriteBufBytes = 1 << 20

// BucketWriter writes etcd's key bucket as checkpoint content, the bytes
// BucketImporter.AppendCheckpoint appends, to a writer as it reads the
// bucket, in two passes, so that a restore never holds the key space:
//
//  1. NoteCold, for the entries at or below the compaction point, in key
//     (that is, revision) order: it remembers, of each key, only where
//     its newest record is;
//  2. WriteCold writes the head and the cold section, which comes first
//     and in key order: each of those newest records, fetched by its
//     revision;
//  3. Add, for every entry from the compaction point on (HotStart), in
//     order: each goes out at once;
//  4. Close.
//
// What it holds meanwhile is the keys at or below the compaction point
// and their revisions, not their values.
type BucketWriter struct {
	w          *bufio.Writer
	compactRev Revision
	bucketPass
	// cold maps each key at or below compactRev to its newest record's
	// place in the bucket.
	cold    map[string]coldRef
	started bool
	scratch []byte
}

// coldRef is where a key's newest record at or below the compaction
// point is: its bucket key, and whether it is a tombstone.
type coldRef struct {
	bucketKey string
	mod       Revision
	tombstone bool
}

// NewBucketWriter writes to w the key bucket of a store compacted at
// compactRev (-1: never) whose newest revision is lastMod (0: the bucket
// is empty). lastMod is in the content's head, before the records: the
// caller reads it from the bucket's last key, and Close checks it.
func NewBucketWriter(w io.Writer, compactRev, lastMod Revision) *BucketWriter {
	return &BucketWriter{
		w:          bufio.NewWriterSize(w, bucketWriteBufBytes),
		compactRev: compactRev, bucketPass: bucketPass{lastMod: lastMod},
		cold: map[string]coldRef{},
	}
}

// bucketPass decodes the entries of a pass over the key bucket, checking
// their order and that none is past lastMod, the revision the caller read
// from the bucket's last key.
type bucketPass struct {
	lastMod Revision
	// seen counts the entries of the current pass, for the order check;
	// prevMod and prevSub are the last one's revision.
	seen    int
	prevMod Revision
	prevSub int64
	// last is the newest revision read in any pass, for the end's check.
	last Revision
}

func (p *bucketPass) decode(key, value []byte) (recHeader, []byte, []byte, error) {
	h, k, v, err := decodeBucketEntry(key, value, p.seen > 0, p.prevMod, p.prevSub)
	if err != nil {
		return h, nil, nil, err
	}
	if h.mod > p.lastMod {
		return h, nil, nil, fmt.Errorf("%w: revision %d after the bucket's last, %d", ErrBadBucket, h.mod, p.lastMod)
	}
	p.seen++
	p.prevMod, p.prevSub = h.mod, h.sub
	p.last = max(p.last, h.mod)
	return h, k, v, nil
}

// checkEnd fails if the bucket's newest revision was not lastMod.
func (p *bucketPass) checkEnd() error {
	if p.last != p.lastMod {
		return fmt.Errorf("%w: the bucket ends at revision %d, not %d", ErrBadBucket, p.last, p.lastMod)
	}
	return nil
}

// NoteCold reads one entry of the first pass. more is false, and the
// entry not taken, once the entries pass the compaction point.
func (bw *BucketWriter) NoteCold(key, value []byte) (more bool, err error) {
	if bw.started {
		return false, fmt.Errorf("mvcc: NoteCold after WriteCold")
	}
	if len(key) >= 8 && Revision(binary.BigEndian.Uint64(key[:8])) > bw.compactRev {
		return false, nil
	}
	h, k, _, err := bw.decode(key, value)
	if err != nil {
		return false, err
	}
	bw.cold[string(k)] = coldRef{bucketKey: string(key), mod: h.mod, tombstone: h.tombstone}
	return true, nil
}

// WriteCold writes the head and the cold section: each key's newest
// record at or below the compaction point that a compaction there keeps
// (a tombstone only at that point), in key order. get returns the value
// the bucket holds at a bucket key NoteCold saw.
func (bw *BucketWriter) WriteCold(get func(bucketKey []byte) []byte) error {
	if bw.started {
		return fmt.Errorf("mvcc: WriteCold twice")
	}
	bw.started = true
	keys := make([]string, 0, len(bw.cold))
	for k, ref := range bw.cold { //core:maporder-ok: sorted below
		if !ref.tombstone || ref.mod == bw.compactRev {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, cmp.Compare[string])
	head := appendCheckpointHead(make([]byte, 0, checkpointHeadBytes), max(1, bw.lastMod, bw.compactRev), bw.compactRev)
	if _, err := bw.w.Write(head); err != nil {
		return err
	}
	for _, k := range keys {
		ref := bw.cold[k]
		bk := []byte(ref.bucketKey)
		h, key, value, err := decodeBucketEntry(bk, get(bk), false, 0, 0)
		if err != nil {
			return err
		}
		if string(key) != k || h.mod != ref.mod {
			return fmt.Errorf("%w: revision %d.%d changed between reads", ErrBadBucket, h.mod, h.sub)
		}
		if err := bw.writeRecord(&h, key, value); err != nil {
			return err
		}
	}
	bw.cold = nil
	bw.seen = 0 // the second pass checks its own order
	return bw.w.WriteByte(0)
}

// HotStart is the bucket key the second pass starts at: the compaction
// point's first.
func (bw *BucketWriter) HotStart() []byte { return hotStart(bw.compactRev) }

// hotStart is the bucket key of a compaction point's first revision.
func hotStart(compactRev Revision) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(max(compactRev, 0)))
	return binary.BigEndian.AppendUint64(append(b, '_'), 0)
}

// Add reads one entry of the second pass, from the compaction point on,
// and writes it.
func (bw *BucketWriter) Add(key, value []byte) error {
	if !bw.started {
		return fmt.Errorf("mvcc: Add before WriteCold")
	}
	h, k, v, err := bw.decode(key, value)
	if err != nil {
		return err
	}
	if h.mod < bw.compactRev {
		return fmt.Errorf("%w: revision %d below the compaction point %d in the second pass", ErrBadBucket, h.mod, bw.compactRev)
	}
	return bw.writeRecord(&h, k, v)
}

func (bw *BucketWriter) writeRecord(h *recHeader, k, v []byte) error {
	size := recordSize(h, len(k), len(v))
	if cap(bw.scratch) < size {
		bw.scratch = make([]byte, size)
	}
	rec := bw.scratch[:size]
	encodeRecord(rec, h, k, v)
	var n [binary.MaxVarintLen64]byte
	if _, err := bw.w.Write(n[:binary.PutUvarint(n[:], uint64(size))]); err != nil {
		return err
	}
	_, err := bw.w.Write(rec)
	return err
}

// Close ends the hot section and flushes. It fails if the bucket's newest
// revision was not the lastMod given.
func (bw *BucketWriter) Close() error {
	if !bw.started {
		return fmt.Errorf("mvcc: Close before WriteCold")
	}
	if err := bw.checkEnd(); err != nil {
		return err
	}
	if err := bw.w.WriteByte(0); err != nil { // the hot section's end
		return err
	}
	return bw.w.Flush()
}
