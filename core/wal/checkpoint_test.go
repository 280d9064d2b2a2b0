package wal_test

import (
	"bytes"
	"errors"
	"io"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/core/wal/memfs"
)

const ckptDir = "member/snap"

// pattern is n bytes of deterministic, non-repeating-looking content.
func pattern(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// writeOddly writes content in pieces of varying sizes, so chunk
// boundaries fall inside Write calls.
func writeOddly(content []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		for i, step := 0, 1; i < len(content); step = step*3 + 1 {
			n := min(step%(300<<10)+1, len(content)-i)
			if _, err := w.Write(content[i : i+n]); err != nil {
				return err
			}
			i += n
		}
		return nil
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	const chunk = wal.CheckpointChunkBytes
	for _, n := range []int{0, 1, chunk - 1, chunk, chunk + 1, 3*chunk + chunk/2} {
		m := memfs.New()
		content := pattern(n)
		must(t, wal.WriteCheckpoint(m, ckptDir, 42, writeOddly(content)))
		// Durable once WriteCheckpoint returns.
		m.Crash(nil)
		got, err := wal.ReadCheckpoint(m, ckptDir, 42)
		must(t, err)
		if !bytes.Equal(got, content) {
			t.Fatalf("size %d: content differs", n)
		}
		if cap(got) != len(got) {
			t.Fatalf("size %d: content slice has cap %d > len %d: an append would clobber the trailer", n, cap(got), len(got))
		}
	}
}

func TestCheckpointList(t *testing.T) {
	m := memfs.New()
	if idx, err := wal.ListCheckpoints(m, ckptDir); err != nil || len(idx) != 0 {
		t.Fatalf("ListCheckpoints of a missing dir = %v, %v", idx, err)
	}
	for _, i := range []uint64{300, 7, 1 << 40} {
		must(t, wal.WriteCheckpoint(m, ckptDir, i, writeOddly(pattern(100))))
	}
	// Leftovers of an interrupted write and of a snapshot being received,
	// and a file that is not ours.
	recv := path.Base(wal.ReceiveTempName(ckptDir, 11, 3))
	for _, name := range []string{"0000000000000009.ckpt.tmp", recv, "notes.txt"} {
		f, err := m.Create(path.Join(ckptDir, name))
		must(t, err)
		must(t, f.Close())
	}
	idx, err := wal.ListCheckpoints(m, ckptDir)
	must(t, err)
	if !slices.Equal(idx, []uint64{7, 300, 1 << 40}) {
		t.Fatalf("ListCheckpoints = %v", idx)
	}
	must(t, wal.RemoveCheckpointTemps(m, ckptDir))
	names, err := m.List(ckptDir)
	must(t, err)
	if slices.Contains(names, "0000000000000009.ckpt.tmp") || slices.Contains(names, recv) || !slices.Contains(names, "notes.txt") {
		t.Fatalf("after RemoveCheckpointTemps: %q", names)
	}
	must(t, wal.RemoveCheckpoint(m, ckptDir, 300))
	m.Crash(nil)
	idx, err = wal.ListCheckpoints(m, ckptDir)
	must(t, err)
	if !slices.Equal(idx, []uint64{7, 1 << 40}) {
		t.Fatalf("after RemoveCheckpoint and a crash: %v", idx)
	}
}

func TestCheckpointCorruption(t *testing.T) {
	const chunk = wal.CheckpointChunkBytes
	const hdr = wal.CheckpointHeaderBytes
	const n = 3*chunk + 1000
	name := path.Join(ckptDir, "0000000000000005.ckpt")
	trailer := int64(hdr + n)
	fileSize := trailer + 4*4 + 32
	tests := []struct {
		name    string
		damage  func(t *testing.T, m *memfs.FS)
		wantOff int64
	}{
		{"first chunk", flip(name, hdr+10), hdr},
		{"third chunk", flip(name, hdr+2*chunk+5), hdr + 2*chunk},
		{"last partial chunk", flip(name, hdr+3*chunk+999), hdr + 3*chunk},
		{"header", flip(name, 9), 0},
		{"chunk crc table", flip(name, trailer+6), trailer},
		{"footer length", flip(name, fileSize-30), fileSize - 32},
		{"footer magic", flip(name, fileSize-1), fileSize - 32},
		{"cut short", func(t *testing.T, m *memfs.FS) {
			f, err := m.OpenAppend(name)
			must(t, err)
			must(t, f.Truncate(fileSize-100))
			must(t, f.Sync())
		}, fileSize - 100 - 32},
		{"cut to almost nothing", func(t *testing.T, m *memfs.FS) {
			f, err := m.OpenAppend(name)
			must(t, err)
			must(t, f.Truncate(10))
			must(t, f.Sync())
		}, 0},
		{"renamed to another index", func(t *testing.T, m *memfs.FS) {
			must(t, m.Rename(path.Join(ckptDir, "0000000000000004.ckpt"), name))
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := memfs.New()
			must(t, wal.WriteCheckpoint(m, ckptDir, 4, writeOddly(pattern(10))))
			must(t, wal.WriteCheckpoint(m, ckptDir, 5, writeOddly(pattern(n))))
			tt.damage(t, m)
			_, err := wal.ReadCheckpoint(m, ckptDir, 5)
			t.Log(err)
			var ce *wal.CorruptError
			if !errors.Is(err, wal.ErrCorrupt) || !errors.As(err, &ce) {
				t.Fatalf("ReadCheckpoint = %v, want ErrCorrupt", err)
			}
			if ce.File != name || ce.Offset != tt.wantOff {
				t.Fatalf("corruption in %s at %d, want %s at %d", ce.File, ce.Offset, name, tt.wantOff)
			}
		})
	}
}

func flip(name string, off int64) func(*testing.T, *memfs.FS) {
	return func(t *testing.T, m *memfs.FS) { must(t, m.FlipBit(name, off, 3)) }
}

func TestCheckpointWriteFailures(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		syncErr func(name string) error
		write   func(io.Writer) error
	}{
		{"file sync fails", func(n string) error {
			if strings.HasSuffix(n, ".tmp") {
				return boom
			}
			return nil
		}, writeOddly(pattern(5000))},
		{"dir sync fails", func(n string) error {
			if n == ckptDir {
				return boom
			}
			return nil
		}, writeOddly(pattern(5000))},
		{"content writer fails", nil, func(w io.Writer) error {
			w.Write(pattern(100))
			return boom
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := memfs.New()
			must(t, m.MkdirAll(ckptDir))
			m.SyncErr = tt.syncErr
			if err := wal.WriteCheckpoint(m, ckptDir, 8, tt.write); !errors.Is(err, boom) {
				t.Fatalf("WriteCheckpoint = %v, want boom", err)
			}
			m.SyncErr = nil
			names, err := m.List(ckptDir)
			must(t, err)
			if len(names) != 0 {
				t.Fatalf("a failed write left %q", names)
			}
		})
	}
}

// TestPartialCheckpoint: a checkpoint write kept unsealed (a transfer
// that broke off) reads back as the content written so far; a file
// without a valid header is corrupt; a kept file is a leftover that
// RemoveCheckpointTemps clears.
func TestPartialCheckpoint(t *testing.T) {
	m := memfs.New()
	name := wal.ReceiveTempName(ckptDir, 42, 1)
	cw, err := wal.CreateCheckpoint(m, ckptDir, 42, name)
	must(t, err)
	content := pattern(wal.CheckpointChunkBytes + 5)
	must(t, writeOddly(content)(cw))
	must(t, cw.Keep())
	p, err := wal.OpenPartialCheckpoint(m, name)
	must(t, err)
	got := make([]byte, p.Bytes())
	if _, err := p.ReadAt(got, 0); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("partial of %d bytes reads back %d bytes (%v), or different", len(content), p.Bytes(), err)
	}
	must(t, p.Close())

	for _, bad := range [][]byte{nil, []byte("detcdckp and no valid header crc")} {
		f, err := m.Create(path.Join(ckptDir, "bad.tmp"))
		must(t, err)
		_, err = f.Write(bad)
		must(t, err)
		must(t, f.Close())
		if _, err := wal.OpenPartialCheckpoint(m, path.Join(ckptDir, "bad.tmp")); !errors.Is(err, wal.ErrCorrupt) {
			t.Fatalf("a partial of %q: %v, want ErrCorrupt", bad, err)
		}
	}
	must(t, wal.RemoveCheckpointTemps(m, ckptDir))
	if names, _ := m.List(ckptDir); slices.Contains(names, path.Base(name)) {
		t.Fatalf("the kept partial survives a start: %v", names)
	}
}
