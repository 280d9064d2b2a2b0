package wal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

const (
	// CheckpointChunkBytes is how much content each trailer crc covers, so
	// that damage is located to a chunk.
	CheckpointChunkBytes = 1 << 20
	// CheckpointBytesMax caps a checkpoint's content: it is read or mapped
	// whole, and the key space it holds lives in memory anyway.
	CheckpointBytesMax = 32 << 30
	// CheckpointBufferBytesMax is the write buffer in front of the file.
	CheckpointBufferBytesMax = 1 << 20

	checkpointMagic       = "detcdckp"
	checkpointFooterMagic = "detcdend"
	checkpointVersion     = 1
	checkpointSuffix      = ".ckpt"
	// Header: magic, u64 index, u32 version, u32 crc32c of the 20 bytes
	// before it. 24 bytes keeps the content 8-byte aligned in the buffer.
	checkpointHeaderBytes = 8 + 8 + 4 + 4
	// Footer: u64 content length, u64 chunk count, u32 reserved zero, u32
	// crc32c of the chunk crcs and the 20 footer bytes before it, magic.
	checkpointFooterBytes = 8 + 8 + 4 + 4 + 8
)

// CheckpointPath is the file of the checkpoint at index in dir.
func CheckpointPath(dir string, index uint64) string {
	return path.Join(dir, fmt.Sprintf("%016x%s", index, checkpointSuffix))
}

func parseCheckpointName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, checkpointSuffix)
	if !ok || len(hex) != 16 {
		return 0, false
	}
	index, err := strconv.ParseUint(hex, 16, 64)
	if err != nil || fmt.Sprintf("%016x", index) != hex {
		return 0, false
	}
	return index, true
}

// WriteCheckpoint writes the content that write produces as the checkpoint
// of index in dir, durably: under a temporary name, synced, renamed, and the
// directory synced. It replaces an existing checkpoint of the same index. On
// any error the temporary file is removed, and so is the renamed file when
// only the final directory sync failed, so that a listed checkpoint is
// always a durable one.
func WriteCheckpoint(fsys FS, dir string, index uint64, write func(w io.Writer) error) error {
	cw, err := CreateCheckpoint(fsys, dir, index, CheckpointPath(dir, index)+tmpSuffix)
	if err != nil {
		return err
	}
	if err := write(cw); err != nil {
		cw.Abort()
		return fmt.Errorf("wal: write checkpoint %s: %w", cw.name, err)
	}
	if err := cw.Seal(); err != nil {
		return err
	}
	return InstallCheckpoint(fsys, dir, index, cw.name)
}

// CheckpointWriter writes a checkpoint's content to a temporary file as it
// comes, keeping the crcs of its chunks, so that content streamed from
// elsewhere never has to be held in memory whole.
type CheckpointWriter struct {
	fsys FS
	f    File
	name string
	cw   *chunkWriter
}

// CreateCheckpoint starts the checkpoint of index in the temporary file
// tmp, in dir. Seal finishes it; InstallCheckpoint then gives it its name.
// Whoever creates temporary files other than WriteCheckpoint's names them
// with ReceiveTempName, so that RemoveCheckpointTemps finds leftovers.
func CreateCheckpoint(fsys FS, dir string, index uint64, tmp string) (*CheckpointWriter, error) {
	if err := mkdirAllDurable(fsys, dir); err != nil {
		return nil, fmt.Errorf("wal: checkpoint dir %s: %w", dir, err)
	}
	f, err := fsys.Create(tmp)
	if err != nil {
		return nil, fmt.Errorf("wal: create checkpoint %s: %w", tmp, err)
	}
	w := &CheckpointWriter{fsys: fsys, f: f, name: tmp, cw: &chunkWriter{w: bufio.NewWriterSize(f, CheckpointBufferBytesMax)}}
	var head [checkpointHeaderBytes]byte
	copy(head[:], checkpointMagic)
	binary.LittleEndian.PutUint64(head[8:], index)
	binary.LittleEndian.PutUint32(head[16:], checkpointVersion)
	binary.LittleEndian.PutUint32(head[20:], crc32.Checksum(head[:20], castagnoli))
	if _, err := w.cw.w.Write(head[:]); err != nil {
		w.Abort()
		return nil, fmt.Errorf("wal: write checkpoint %s: %w", tmp, err)
	}
	return w, nil
}

// Name is the temporary file's name.
func (w *CheckpointWriter) Name() string { return w.name }

// Size is how much content was written.
func (w *CheckpointWriter) Size() int64 { return w.cw.n }

// Write appends content.
func (w *CheckpointWriter) Write(p []byte) (int, error) { return w.cw.Write(p) }

// Seal writes the trailer and makes the temporary file durable. On error
// the file is removed.
func (w *CheckpointWriter) Seal() error {
	err := w.cw.err
	if err == nil {
		_, err = w.cw.w.Write(w.cw.trailer())
	}
	if err == nil {
		err = w.cw.w.Flush()
	}
	if err != nil {
		w.Abort()
		return fmt.Errorf("wal: write checkpoint %s: %w", w.name, err)
	}
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return fmt.Errorf("wal: sync checkpoint %s: %w", w.name, err)
	}
	err = w.f.Close()
	w.f = nil
	if err != nil {
		w.Abort()
		return fmt.Errorf("wal: close checkpoint %s: %w", w.name, err)
	}
	return nil
}

// Keep stops writing without sealing and keeps the temporary file, with
// the content written so far after the header, for OpenPartialCheckpoint:
// a transfer that broke off resumes from it. It is not made durable:
// RemoveCheckpointTemps clears it at the next start. On error the file is
// removed.
func (w *CheckpointWriter) Keep() error {
	err := w.cw.err
	if err == nil {
		err = w.cw.w.Flush()
	}
	if err == nil {
		err = w.f.Close()
		w.f = nil
	}
	if err != nil {
		w.Abort()
		return fmt.Errorf("wal: keep partial checkpoint %s: %w", w.name, err)
	}
	return nil
}

// PartialCheckpoint reads the content of a temporary checkpoint file that
// CheckpointWriter.Keep kept: no trailer, the content is what was written.
type PartialCheckpoint struct {
	f     File
	bytes int64
}

// OpenPartialCheckpoint opens a kept temporary checkpoint file. A file
// without a valid header fails with an error wrapping ErrCorrupt.
func OpenPartialCheckpoint(fsys FS, name string) (*PartialCheckpoint, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("wal: open partial checkpoint %s: %w", name, err)
	}
	var head [checkpointHeaderBytes]byte
	size, err := f.Size()
	if err == nil {
		_, err = f.ReadAt(head[:], 0)
	}
	switch {
	case err != nil:
		f.Close()
		return nil, corruptf(name, 0, "partial checkpoint of %d bytes without its header: %v", size, err)
	case !bytes.Equal(head[:8], []byte(checkpointMagic)) || crc32.Checksum(head[:20], castagnoli) != binary.LittleEndian.Uint32(head[20:]):
		f.Close()
		return nil, corruptf(name, 0, "bad partial checkpoint header")
	}
	return &PartialCheckpoint{f: f, bytes: size - checkpointHeaderBytes}, nil
}

// Bytes is how much content the file holds.
func (p *PartialCheckpoint) Bytes() int64 { return p.bytes }

// ReadAt reads content at content offset off.
func (p *PartialCheckpoint) ReadAt(b []byte, off int64) (int, error) {
	return p.f.ReadAt(b, checkpointHeaderBytes+off)
}

// Close closes the file.
func (p *PartialCheckpoint) Close() error { return p.f.Close() }

// Abort gives up the checkpoint and removes its temporary file.
func (w *CheckpointWriter) Abort() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	w.fsys.Remove(w.name)
}

// InstallCheckpoint makes the sealed temporary file tmp the checkpoint of
// index in dir, durably: renamed (replacing one of the same index) and the
// directory synced. On error tmp is removed, and so is the renamed file
// when only the directory sync failed, so that a listed checkpoint is
// always a durable one.
func InstallCheckpoint(fsys FS, dir string, index uint64, tmp string) error {
	final := CheckpointPath(dir, index)
	if err := fsys.Rename(tmp, final); err != nil {
		fsys.Remove(tmp)
		return fmt.Errorf("wal: rename checkpoint %s: %w", tmp, err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		fsys.Remove(final)
		return fmt.Errorf("wal: sync dir of checkpoint %s: %w", final, err)
	}
	return nil
}

// ReceiveTempName is the temporary file of the seq-th checkpoint of index
// received into dir: unique, so that transfers of the same index never
// share a file.
func ReceiveTempName(dir string, index, seq uint64) string {
	return fmt.Sprintf("%s%s%d%s", CheckpointPath(dir, index), receiveInfix, seq, tmpSuffix)
}

// receiveInfix marks a received checkpoint's temporary file.
const receiveInfix = ".recv"

// chunkWriter passes content through and keeps a crc per chunk of it.
type chunkWriter struct {
	w    *bufio.Writer
	n    int64
	crcs []uint32
	err  error
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.n+int64(len(p)) > CheckpointBytesMax {
		c.err = fmt.Errorf("checkpoint content exceeds CheckpointBytesMax %d", int64(CheckpointBytesMax))
		return 0, c.err
	}
	for rest := p; len(rest) > 0; {
		inChunk := int(c.n % CheckpointChunkBytes)
		if inChunk == 0 {
			c.crcs = append(c.crcs, 0)
		}
		k := min(len(rest), CheckpointChunkBytes-inChunk)
		c.crcs[len(c.crcs)-1] = crc32.Update(c.crcs[len(c.crcs)-1], castagnoli, rest[:k])
		c.n += int64(k)
		rest = rest[k:]
	}
	n, err := c.w.Write(p)
	if err != nil {
		c.err = err
	}
	return n, err
}

func (c *chunkWriter) trailer() []byte {
	t := make([]byte, 0, 4*len(c.crcs)+checkpointFooterBytes)
	for _, crc := range c.crcs {
		t = binary.LittleEndian.AppendUint32(t, crc)
	}
	t = binary.LittleEndian.AppendUint64(t, uint64(c.n))
	t = binary.LittleEndian.AppendUint64(t, uint64(len(c.crcs)))
	t = binary.LittleEndian.AppendUint32(t, 0)
	t = binary.LittleEndian.AppendUint32(t, crc32.Checksum(t, castagnoli))
	return append(t, checkpointFooterMagic...)
}

// ListCheckpoints returns the indexes of the checkpoints in dir, ascending;
// a missing dir has none. Temporary files are skipped, not removed: a writer
// off the loop may be producing one right now (RemoveCheckpointTemps clears
// leftovers at startup).
func ListCheckpoints(fsys FS, dir string) ([]uint64, error) {
	names, err := fsys.List(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("wal: list checkpoints in %s: %w", dir, err)
	}
	var idx []uint64
	for _, n := range names {
		if i, ok := parseCheckpointName(n); ok {
			idx = append(idx, i)
		}
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	return idx, nil
}

// RemoveCheckpointTemps removes temporary files of checkpoint writes that
// never finished. Call it before any checkpoint writer starts.
func RemoveCheckpointTemps(fsys FS, dir string) error {
	_, err := removeCheckpointTemps(fsys, dir, false)
	return err
}

// ReceivedTemp is a received snapshot's temporary file that a restart
// found: a partial a transfer that broke off kept, or one that arrived
// whole and was not installed. Seq is the number ReceiveTempName gave it.
type ReceivedTemp struct {
	Name  string
	Index uint64
	Seq   uint64
}

// RemoveWriteTemps is RemoveCheckpointTemps, except that it leaves the
// files of received snapshots and lists them, for a transfer to resume
// from.
func RemoveWriteTemps(fsys FS, dir string) ([]ReceivedTemp, error) {
	return removeCheckpointTemps(fsys, dir, true)
}

func removeCheckpointTemps(fsys FS, dir string, keepReceived bool) ([]ReceivedTemp, error) {
	names, err := fsys.List(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("wal: list checkpoints in %s: %w", dir, err)
	}
	var kept []ReceivedTemp
	for _, n := range names {
		base, ok := strings.CutSuffix(n, tmpSuffix)
		var seq string
		if i := strings.LastIndex(base, receiveInfix); ok && i >= 0 {
			base, seq = base[:i], base[i+len(receiveInfix):]
		}
		index, isCkpt := parseCheckpointName(base)
		if !ok || !isCkpt {
			continue
		}
		if keepReceived && seq != "" {
			if k, err := strconv.ParseUint(seq, 10, 64); err == nil {
				kept = append(kept, ReceivedTemp{Name: path.Join(dir, n), Index: index, Seq: k})
				continue
			}
		}
		if err := fsys.Remove(path.Join(dir, n)); err != nil {
			return nil, fmt.Errorf("wal: remove checkpoint leftover %s: %w", n, err)
		}
	}
	return kept, nil
}

// RemoveCheckpoint removes the checkpoint of index, durably.
func RemoveCheckpoint(fsys FS, dir string, index uint64) error {
	name := CheckpointPath(dir, index)
	if err := fsys.Remove(name); err != nil {
		return fmt.Errorf("wal: remove checkpoint %s: %w", name, err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("wal: remove checkpoint %s: %w", name, err)
	}
	return nil
}

// ReadCheckpoint reads and verifies the checkpoint of index and returns its
// content: one slice of the file's buffer, so the caller may keep using it
// as memory without a copy. Damage, a short file included, fails with an
// error wrapping ErrCorrupt that names the file and the offset.
func ReadCheckpoint(fsys FS, dir string, index uint64) ([]byte, error) {
	return ReadCheckpointFile(fsys, CheckpointPath(dir, index), index)
}

// ReadCheckpointFile is ReadCheckpoint of the file name, which must hold
// the checkpoint of index: a sealed temporary file, say.
func ReadCheckpointFile(fsys FS, name string, index uint64) ([]byte, error) {
	return loadCheckpointFile(fsys, name, index, readWhole)
}

// MapCheckpoint is ReadCheckpoint, except that the content is the file
// mapped read only where fsys maps (Mapper): what a restart loads its store
// from. The mapping is never unmapped, so call it once per data directory
// opened, not for snapshots that come and go.
func MapCheckpoint(fsys FS, dir string, index uint64) ([]byte, error) {
	return loadCheckpointFile(fsys, CheckpointPath(dir, index), index, mapWhole)
}

func loadCheckpointFile(fsys FS, name string, index uint64, load func(FS, File, int) ([]byte, error)) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("wal: open checkpoint %s: %w", name, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("wal: size of checkpoint %s: %w", name, err)
	}
	const overhead = checkpointHeaderBytes + checkpointFooterBytes
	maxSize := int64(overhead + CheckpointBytesMax + 4*(CheckpointBytesMax/CheckpointChunkBytes))
	switch {
	case size < overhead:
		return nil, corruptf(name, 0, "checkpoint of %d bytes is shorter than its header and footer", size)
	case size > maxSize:
		return nil, corruptf(name, 0, "checkpoint of %d bytes exceeds the largest possible (%d)", size, maxSize)
	}
	b, err := load(fsys, f, int(size))
	if err != nil {
		return nil, fmt.Errorf("wal: read checkpoint %s: %w", name, err)
	}
	return verifyCheckpoint(name, index, b)
}

func verifyCheckpoint(name string, index uint64, b []byte) ([]byte, error) {
	size := int64(len(b))
	footOff := size - checkpointFooterBytes
	foot := b[footOff:]
	if string(foot[24:]) != checkpointFooterMagic {
		return nil, corruptf(name, footOff, "no checkpoint footer (file cut short?)")
	}
	contentLen := binary.LittleEndian.Uint64(foot[0:])
	chunks := binary.LittleEndian.Uint64(foot[8:])
	if contentLen > CheckpointBytesMax || chunks != (contentLen+CheckpointChunkBytes-1)/CheckpointChunkBytes {
		return nil, corruptf(name, footOff, "footer has content length %d and %d chunks", contentLen, chunks)
	}
	trailerOff := footOff - 4*int64(chunks)
	if trailerOff != checkpointHeaderBytes+int64(contentLen) {
		return nil, corruptf(name, footOff, "footer says %d content bytes, file size %d disagrees", contentLen, size)
	}
	if crc32.Checksum(b[trailerOff:footOff+20], castagnoli) != binary.LittleEndian.Uint32(foot[20:]) ||
		binary.LittleEndian.Uint32(foot[16:]) != 0 {
		return nil, corruptf(name, trailerOff, "checkpoint trailer checksum mismatch")
	}
	head := b[:checkpointHeaderBytes]
	if !bytes.Equal(head[:8], []byte(checkpointMagic)) ||
		crc32.Checksum(head[:20], castagnoli) != binary.LittleEndian.Uint32(head[20:]) {
		return nil, corruptf(name, 0, "bad checkpoint header")
	}
	if v := binary.LittleEndian.Uint32(head[16:]); v != checkpointVersion {
		return nil, corruptf(name, 0, "unsupported checkpoint format version %d", v)
	}
	if got := binary.LittleEndian.Uint64(head[8:]); got != index {
		return nil, corruptf(name, 0, "checkpoint header says index %d", got)
	}
	content := b[checkpointHeaderBytes:trailerOff:trailerOff]
	crcs := b[trailerOff:footOff]
	for i := range int(chunks) {
		lo := i * CheckpointChunkBytes
		chunk := content[lo:min(lo+CheckpointChunkBytes, len(content))]
		if crc32.Checksum(chunk, castagnoli) != binary.LittleEndian.Uint32(crcs[4*i:]) {
			return nil, corruptf(name, checkpointHeaderBytes+int64(lo), "checkpoint chunk %d checksum mismatch", i)
		}
	}
	return content, nil
}
