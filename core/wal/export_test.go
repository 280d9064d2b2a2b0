package wal

// RecordOffsets returns the offset of each valid record in segment bytes b,
// then the offset where the valid data ends.
func RecordOffsets(b []byte) []int64 {
	var offs []int64
	res, _ := scanSegment("test", b, int64(len(b)), true, func(off int64, _ recordType, _ []byte) error {
		offs = append(offs, off)
		return nil
	})
	return append(offs, res.end)
}

// WrittenBytes is how much of the current segment is written.
func (w *WAL) WrittenBytes() int64 { return w.off }

// SegmentNames are the live segments' file names, oldest first.
func (w *WAL) SegmentNames() []string {
	var out []string
	for _, s := range w.segs {
		out = append(out, s.name())
	}
	return out
}

// ParseSegmentName returns a segment file name's sequence and first index.
func ParseSegmentName(name string) (seq, first uint64, ok bool) {
	s, ok := parseSegmentName(name)
	return s.seq, s.first, ok
}

const CheckpointHeaderBytes = checkpointHeaderBytes
