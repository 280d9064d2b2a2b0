package wal_test

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"testing"

	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/core/wal/memfs"
)

const dir = "member/wal"

var meta = []byte("member 1 of cluster 7")

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// entries makes entries lo..hi of term. Data lengths vary and keep record
// lengths off multiples of 256, so the first byte of every record is
// non-zero and any kept part of a torn record is visible.
func entries(term, lo, hi uint64) []wal.Entry {
	var out []wal.Entry
	for i := lo; i <= hi; i++ {
		data := fmt.Sprintf("entry %d term %d %s", i, term, strings.Repeat("x", int(i%17)))
		out = append(out, wal.Entry{Term: term, Index: i, Type: uint8(i % 3), Data: []byte(data)})
	}
	return out
}

func hardState(term, commit uint64) *wal.HardState {
	return &wal.HardState{Term: term, Vote: term % 3, Commit: commit}
}

func opts(segBytes int64) wal.Options {
	return wal.Options{Dir: dir, SegmentBytes: segBytes}
}

func create(t *testing.T, fsys wal.FS, segBytes int64) *wal.WAL {
	t.Helper()
	w, err := wal.Create(fsys, opts(segBytes), meta)
	must(t, err)
	return w
}

func open(t *testing.T, fsys wal.FS, segBytes int64, after uint64) (*wal.WAL, *wal.Recovered) {
	t.Helper()
	w, rec, err := wal.Open(fsys, opts(segBytes), after)
	must(t, err)
	if string(rec.Meta) != string(meta) {
		t.Fatalf("meta %q, want %q", rec.Meta, meta)
	}
	return w, rec
}

func save(t *testing.T, w *wal.WAL, hs *wal.HardState, ents []wal.Entry) {
	t.Helper()
	must(t, w.Save(hs, ents))
	must(t, w.Sync())
}

// logModel applies raft's overwrite rule to what was written, to compute
// what recovery must return.
type logModel struct{ ents []wal.Entry }

func (l *logModel) add(ents []wal.Entry) {
	for _, e := range ents {
		for len(l.ents) > 0 && l.ents[len(l.ents)-1].Index >= e.Index {
			l.ents = l.ents[:len(l.ents)-1]
		}
		l.ents = append(l.ents, e)
	}
}

func (l *logModel) after(index uint64) []wal.Entry {
	for i, e := range l.ents {
		if e.Index > index {
			return l.ents[i:]
		}
	}
	return nil
}

func checkEntries(t *testing.T, got, want []wal.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("recovered %d entries %s, want %d %s", len(got), span(got), len(want), span(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Term != w.Term || g.Index != w.Index || g.Type != w.Type || string(g.Data) != string(w.Data) {
			t.Fatalf("entry %d = %+v, want %+v", i, g, w)
		}
	}
}

func span(ents []wal.Entry) string {
	if len(ents) == 0 {
		return "[]"
	}
	return fmt.Sprintf("[%d..%d]", ents[0].Index, ents[len(ents)-1].Index)
}

func segments(t *testing.T, fsys wal.FS) []string {
	t.Helper()
	names, err := fsys.List(dir)
	must(t, err)
	var segs []string
	for _, n := range names {
		if _, _, ok := wal.ParseSegmentName(n); ok {
			segs = append(segs, n)
		}
	}
	return segs
}

// checkCorrupt requires err to be corruption in file at offset.
func checkCorrupt(t *testing.T, err error, file string, off int64) {
	t.Helper()
	if !errors.Is(err, wal.ErrCorrupt) {
		t.Fatalf("error %v, want ErrCorrupt", err)
	}
	var ce *wal.CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a CorruptError", err)
	}
	if ce.File != path.Join(dir, file) || (off >= 0 && ce.Offset != off) {
		t.Fatalf("corruption reported in %s at %d, want %s at %d: %v", ce.File, ce.Offset, path.Join(dir, file), off, err)
	}
	if msg := err.Error(); !strings.Contains(msg, ce.File) || !strings.Contains(msg, fmt.Sprintf("offset %d", ce.Offset)) {
		t.Fatalf("message %q does not name the file and offset", msg)
	}
}

func readFile(t *testing.T, m *memfs.FS, name string) []byte {
	t.Helper()
	b, err := m.ReadFile(path.Join(dir, name))
	must(t, err)
	return b
}
