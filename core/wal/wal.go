package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/detcd/detcd/core/internal/planted"
)

const (
	// SegmentBytesDefault is the segment size when Options leave it zero.
	SegmentBytesDefault = 64 << 20
	// SegmentBytesMax caps Options.SegmentBytes: recovery reads a whole
	// segment into memory.
	SegmentBytesMax = 1 << 30
	// BufferBytesMax caps the records Save buffers before writing them out
	// (a single larger record is written on its own).
	BufferBytesMax = 4 << 20
	// segmentFileBytesMax is the largest segment file a WAL can write: a
	// segment is cut only after a whole buffer went in.
	segmentFileBytesMax = SegmentBytesMax + BufferBytesMax + recordHeaderBytes + 1 + RecordBytesMax
)

var errClosed = errors.New("wal: closed")

// Options configure a WAL.
type Options struct {
	// Dir is the WAL's directory in the FS.
	Dir string
	// SegmentBytes is the size at which a segment is cut and to which new
	// segments are preallocated. Zero means SegmentBytesDefault.
	SegmentBytes int64
	// UnsafeRepair makes Open cut damage in the last segment (a corrupt
	// record and everything after it) instead of refusing, and report it
	// in Recovered.Repaired. What is cut may include acknowledged writes:
	// an operator's choice, never a default.
	UnsafeRepair bool
	// Bug names a planted bug (core/internal/planted); empty but in
	// detcdbugs builds.
	Bug string
}

func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		return o, errors.New("wal: Options.Dir is empty")
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = SegmentBytesDefault
	}
	if o.SegmentBytes < 0 || o.SegmentBytes > SegmentBytesMax {
		return o, fmt.Errorf("wal: SegmentBytes %d out of range (0, %d]", o.SegmentBytes, SegmentBytesMax)
	}
	return o, nil
}

// WAL appends raft entries and hard states to the last segment of a
// directory. It is used from one goroutine.
type WAL struct {
	fs       FS
	dir      string
	segBytes int64
	meta     []byte

	// segs are the live segments, oldest first; the last one is f.
	segs []segment
	f    File
	// off is how many bytes of f are written, which is also f's offset.
	off int64
	// buf holds encoded records not yet written to f.
	buf []byte
	// hs and lastIndex are as of the newest record in buf or f: they seed a
	// new segment's hard state copy and first index.
	hs        HardState
	lastIndex uint64
	// unsynced says f was written to since its last sync.
	unsynced bool
	// err is sticky: once a write, sync or cut fails nothing more is done.
	err error
	// bug is Options.Bug.
	bug string
}

// Exists reports whether dir holds a WAL segment.
func Exists(fsys FS, dir string) (bool, error) {
	names, err := fsys.List(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("wal: list %s: %w", dir, err)
	}
	for _, n := range names {
		if _, ok := parseSegmentName(n); ok {
			return true, nil
		}
	}
	return false, nil
}

// Create makes a new WAL in opts.Dir, which must not hold one yet. meta is
// opaque to the WAL (member and cluster ids) and is returned by Open.
func Create(fsys FS, opts Options, meta []byte) (*WAL, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(meta) > MetaBytesMax {
		return nil, fmt.Errorf("wal: meta of %d bytes exceeds MetaBytesMax %d", len(meta), MetaBytesMax)
	}
	if err := mkdirAllDurable(fsys, opts.Dir); err != nil {
		return nil, fmt.Errorf("wal: create %s: %w", opts.Dir, err)
	}
	names, err := fsys.List(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("wal: create %s: %w", opts.Dir, err)
	}
	for _, n := range names {
		if _, ok := parseSegmentName(n); ok {
			return nil, fmt.Errorf("wal: create %s: already holds %s: %w", opts.Dir, n, fs.ErrExist)
		}
	}
	if err := removeTemps(fsys, opts.Dir, names); err != nil {
		return nil, err
	}
	w := &WAL{
		fs:       fsys,
		dir:      opts.Dir,
		segBytes: opts.SegmentBytes,
		meta:     append([]byte(nil), meta...),
		bug:      opts.Bug,
	}
	if err := w.startSegment(segment{seq: 0, first: 0}); err != nil {
		return nil, err
	}
	return w, nil
}

// mkdirAllDurable makes dir and syncs every ancestor, since MkdirAll may
// have created any of them and a directory's entry is durable only once
// its parent is synced.
func mkdirAllDurable(fsys FS, dir string) error {
	if err := fsys.MkdirAll(dir); err != nil {
		return err
	}
	for d := path.Dir(path.Clean(dir)); ; d = path.Dir(d) {
		if err := fsys.SyncDir(d); err != nil {
			return err
		}
		if d == "." || d == "/" {
			return nil
		}
	}
}

// removeTemps removes segments whose creation never finished: they were
// never renamed, so they are no part of the log.
func removeTemps(fsys FS, dir string, names []string) error {
	for _, n := range names {
		if isSegmentTemp(n) {
			if err := fsys.Remove(path.Join(dir, n)); err != nil {
				return fmt.Errorf("wal: remove leftover %s: %w", n, err)
			}
		}
	}
	return nil
}

// startSegment writes s's header and the current hard state under a
// temporary name, preallocates, syncs and renames it into place, and makes
// it the segment being written.
func (w *WAL) startSegment(s segment) error {
	final := path.Join(w.dir, s.name())
	tmp := final + tmpSuffix
	f, err := w.fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("wal: create segment %s: %w", tmp, err)
	}
	fail := func(err error) error {
		f.Close()
		w.fs.Remove(tmp)
		return fmt.Errorf("wal: start segment %s: %w", final, err)
	}
	head := appendSegmentHeaderRecord(nil, s, w.meta)
	head = appendHardStateRecord(head, w.hs)
	if _, err := f.Write(head); err != nil {
		return fail(err)
	}
	if err := f.Preallocate(w.segBytes); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := w.fs.Rename(tmp, final); err != nil {
		return fail(err)
	}
	if err := w.fs.SyncDir(w.dir); err != nil {
		f.Close()
		return fmt.Errorf("wal: start segment %s: %w", final, err)
	}
	w.f = f
	w.off = int64(len(head))
	w.unsynced = false
	w.segs = append(w.segs, s)
	return nil
}

func (w *WAL) usable() error {
	if w.err != nil {
		if w.err == errClosed {
			return errClosed
		}
		return fmt.Errorf("wal: unusable after an earlier failure: %w", w.err)
	}
	return nil
}

func (w *WAL) fail(err error) error {
	w.err = err
	return err
}

// Save buffers entries and, if hs is not nil, a hard state; nothing is
// written to the file before Sync unless the buffer fills up. Entries must
// be contiguous within one call. Across calls the first index may go back
// (raft overwriting an uncommitted suffix) or jump ahead (after a
// checkpoint that covers the skipped indexes); Open checks the result.
func (w *WAL) Save(hs *HardState, ents []Entry) error {
	if err := w.usable(); err != nil {
		return err
	}
	for i := range ents {
		e := &ents[i]
		if e.Index == 0 {
			return errors.New("wal: save: entry index 0")
		}
		if i > 0 && e.Index != ents[i-1].Index+1 {
			return fmt.Errorf("wal: save: entry index %d follows %d", e.Index, ents[i-1].Index)
		}
		if n := entryPayloadBytes(e); n > RecordBytesMax {
			return fmt.Errorf("wal: save: entry %d of %d bytes exceeds RecordBytesMax %d", e.Index, n, RecordBytesMax)
		}
	}
	for i := range ents {
		e := &ents[i]
		if err := w.reserve(recordHeaderBytes + 1 + entryPayloadBytes(e)); err != nil {
			return err
		}
		w.buf = appendEntryRecord(w.buf, e)
		w.lastIndex = e.Index
	}
	if hs != nil && *hs != w.hs {
		if err := w.reserve(recordHeaderBytes + 1 + 3*binary.MaxVarintLen64); err != nil {
			return err
		}
		w.buf = appendHardStateRecord(w.buf, *hs)
		w.hs = *hs
	}
	return nil
}

// reserve writes the buffer out if n more bytes would overflow it.
func (w *WAL) reserve(n int) error {
	if len(w.buf) > 0 && len(w.buf)+n > BufferBytesMax {
		return w.flush()
	}
	return nil
}

// flush writes the buffer to the current segment and cuts the segment if it
// is full. Cutting only here, between whole buffers, keeps w.hs and
// w.lastIndex true of everything written when the next segment starts.
func (w *WAL) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.f.Write(w.buf)
	w.off += int64(n)
	w.unsynced = true
	if err != nil {
		return w.fail(fmt.Errorf("wal: write %s: %w", w.curName(), err))
	}
	w.buf = w.buf[:0]
	if cap(w.buf) > BufferBytesMax {
		w.buf = nil
	}
	if w.off >= w.segBytes {
		if err := w.cut(); err != nil {
			return w.fail(err)
		}
	}
	return nil
}

func (w *WAL) curName() string {
	return path.Join(w.dir, w.segs[len(w.segs)-1].name())
}

// cut finishes the current segment and starts the next. The finished one is
// truncated to its written length, dropping preallocated zeros, because
// recovery requires a non-last segment to end exactly at its end of file.
func (w *WAL) cut() error {
	name := w.curName()
	if err := w.f.Truncate(w.off); err != nil {
		return fmt.Errorf("wal: cut %s: truncate: %w", name, err)
	}
	sync := w.f.Sync
	if planted.Enabled && w.bug == planted.WALCutNoSync {
		sync = func() error { return nil } // planted: the finished segment's tail is closed unsynced
	}
	if err := sync(); err != nil {
		return fmt.Errorf("wal: cut %s: sync: %w", name, err)
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("wal: cut %s: close: %w", name, err)
	}
	cur := w.segs[len(w.segs)-1]
	return w.startSegment(segment{seq: cur.seq + 1, first: w.lastIndex + 1})
}

// Flush writes the buffered records to the segment file without making
// them durable, as the write before an fsync: a driver that separates the
// two (the simulator, to crash between them) calls it first. Sync
// flushes too.
func (w *WAL) Flush() error {
	if err := w.usable(); err != nil {
		return err
	}
	return w.flush()
}

// Sync writes the buffered records and makes everything saved so far
// durable. Only after it returns nil may a write be acknowledged.
func (w *WAL) Sync() error {
	if err := w.usable(); err != nil {
		return err
	}
	if err := w.flush(); err != nil {
		return err
	}
	if !w.unsynced || planted.Enabled && w.bug == planted.WALSyncSkipped { // planted: written but never synced
		return nil
	}
	if err := w.f.Sync(); err != nil {
		return w.fail(fmt.Errorf("wal: sync %s: %w", w.curName(), err))
	}
	w.unsynced = false
	return nil
}

// DetachTo takes the oldest segments whose every entry has an index below
// index off the log, never the segment being written, and returns their
// paths, oldest first, for RemoveSegments. The caller guarantees that a
// durable checkpoint covers them. Until they are removed they stay on
// disk, below the checkpoint, as after a crash right after it was made
// durable: a restart skips them.
func (w *WAL) DetachTo(index uint64) ([]string, error) {
	if err := w.usable(); err != nil {
		return nil, err
	}
	// A segment's surviving entries all lie below the next segment's first
	// index.
	var paths []string
	for len(w.segs) > 1 && w.segs[1].first <= index {
		paths = append(paths, path.Join(w.dir, w.segs[0].name()))
		w.segs = w.segs[1:]
	}
	return paths, nil
}

// RemoveSegments removes segments DetachTo took off the log, in the order
// given (oldest first), with their directory synced after each removal,
// so that a crash can never leave a hole in the sequence. It touches
// nothing the log's writer does, so it may run while the log is written.
func RemoveSegments(fsys FS, paths []string) error {
	for _, name := range paths {
		if err := fsys.Remove(name); err != nil {
			return fmt.Errorf("wal: release %s: %w", name, err)
		}
		if err := fsys.SyncDir(path.Dir(name)); err != nil {
			return fmt.Errorf("wal: release %s: %w", name, err)
		}
	}
	return nil
}

// Close syncs what was saved and closes the segment. After a failure it only
// closes.
func (w *WAL) Close() error {
	if w.err == errClosed {
		return nil
	}
	var err error
	if w.err == nil {
		err = w.Sync()
	}
	if w.f != nil {
		if cerr := w.f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("wal: close %s: %w", w.curName(), cerr)
		}
		w.f = nil
	}
	w.err = errClosed
	return err
}
