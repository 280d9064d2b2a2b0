package mvcc

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// bucketWriteBufBytes is the buffer between a BucketWriter and its writer.
const bucketWriteBufBytes = 1 << 20

// BucketWriter writes etcd's key bucket, read in key (that is, revision)
// order, as checkpoint content, the bytes BucketImporter.AppendCheckpoint
// appends, to a writer as the entries come. The records at or below the
// compaction point wait in memory, values and all: the cold section comes
// first, each key's newest of them in key order, and the bucket gives
// them in revision order. Every record after the compaction point goes
// out at once. A restore of a store never compacted so holds none of its
// key space; one compacted near its last revision holds most of it.
type BucketWriter struct {
	w                   *bufio.Writer
	compactRev, lastMod Revision
	// cold holds the records at or below compactRev until the first one
	// after it, when the head and the cold section are written.
	cold    BucketImporter
	started bool
	scratch []byte
	// n counts the entries added, for the order check.
	n       int
	prevMod Revision
	prevSub int64
}

// NewBucketWriter writes to w the key bucket of a store compacted at
// compactRev (-1: never) whose newest revision is lastMod (0: the bucket
// is empty). lastMod is in the content's head, before the records: the
// caller reads it from the bucket's last key, and Close checks it.
func NewBucketWriter(w io.Writer, compactRev, lastMod Revision) *BucketWriter {
	return &BucketWriter{w: bufio.NewWriterSize(w, bucketWriteBufBytes), compactRev: compactRev, lastMod: lastMod}
}

// Add decodes one key bucket entry and writes it, or keeps it if it is at
// or below the compaction point.
func (bw *BucketWriter) Add(key, value []byte) error {
	h, k, v, err := decodeBucketEntry(key, value, bw.n > 0, bw.prevMod, bw.prevSub)
	if err != nil {
		return err
	}
	bw.n++
	bw.prevMod, bw.prevSub = h.mod, h.sub
	if h.mod > bw.lastMod {
		return fmt.Errorf("%w: revision %d after the bucket's last, %d", ErrBadBucket, h.mod, bw.lastMod)
	}
	if h.mod <= bw.compactRev {
		bw.cold.add(&h, k, v)
		return nil
	}
	if err := bw.start(); err != nil {
		return err
	}
	size := recordSize(&h, len(k), len(v))
	if cap(bw.scratch) < size {
		bw.scratch = make([]byte, size)
	}
	rec := bw.scratch[:size]
	encodeRecord(rec, &h, k, v)
	return bw.writeRecord(rec)
}

// start writes the head and the cold section, and the hot section's
// records at the compaction point, once.
func (bw *BucketWriter) start() error {
	if bw.started {
		return nil
	}
	bw.started = true
	cold, hot := bw.cold.sections(bw.compactRev)
	head := appendCheckpointHead(make([]byte, 0, checkpointHeadBytes), max(1, bw.lastMod, bw.compactRev), bw.compactRev)
	if _, err := bw.w.Write(appendSection(head, cold)); err != nil {
		return err
	}
	for _, r := range hot {
		if err := bw.writeRecord([]byte(r)); err != nil {
			return err
		}
	}
	return nil
}

func (bw *BucketWriter) writeRecord(rec []byte) error {
	var n [binary.MaxVarintLen64]byte
	if _, err := bw.w.Write(n[:binary.PutUvarint(n[:], uint64(len(rec)))]); err != nil {
		return err
	}
	_, err := bw.w.Write(rec)
	return err
}

// Close writes what is left and flushes. It fails if the bucket's newest
// revision was not the lastMod given.
func (bw *BucketWriter) Close() error {
	if bw.prevMod != bw.lastMod {
		return fmt.Errorf("%w: the bucket ends at revision %d, not %d", ErrBadBucket, bw.prevMod, bw.lastMod)
	}
	if err := bw.start(); err != nil {
		return err
	}
	if err := bw.w.WriteByte(0); err != nil { // the hot section's end
		return err
	}
	return bw.w.Flush()
}
