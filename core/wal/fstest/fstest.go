package fstest

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"slices"
	"testing"

	"github.com/detcd/detcd/core/wal"
)

// Run runs the contract checks, each on a fresh FS from newFS.
func Run(t *testing.T, newFS func(t *testing.T) wal.FS) {
	tests := []struct {
		name string
		fn   func(t *testing.T, fsys wal.FS)
	}{
		{"WriteRead", testWriteRead},
		{"CreateTruncates", testCreateTruncates},
		{"OpenIsReadOnly", testOpenIsReadOnly},
		{"OpenAppendOffset", testOpenAppendOffset},
		{"PreallocateKeepsOffset", testPreallocateKeepsOffset},
		{"Truncate", testTruncate},
		{"Names", testNames},
		{"Missing", testMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newFS(t)) })
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func create(t *testing.T, fsys wal.FS, name string, content string) {
	t.Helper()
	f, err := fsys.Create(name)
	must(t, err)
	_, err = f.Write([]byte(content))
	must(t, err)
	must(t, f.Sync())
	must(t, f.Close())
}

func contentOf(t *testing.T, fsys wal.FS, name string) string {
	t.Helper()
	f, err := fsys.Open(name)
	must(t, err)
	defer f.Close()
	b, err := io.ReadAll(f)
	must(t, err)
	size, err := f.Size()
	must(t, err)
	if size != int64(len(b)) {
		t.Fatalf("%s: Size %d, read %d bytes", name, size, len(b))
	}
	return string(b)
}

func testWriteRead(t *testing.T, fsys wal.FS) {
	must(t, fsys.MkdirAll("d"))
	create(t, fsys, "d/f", "hello world")
	if got := contentOf(t, fsys, "d/f"); got != "hello world" {
		t.Fatalf("content %q", got)
	}
	f, err := fsys.Open("d/f")
	must(t, err)
	defer f.Close()
	p := make([]byte, 5)
	if n, err := f.ReadAt(p, 6); n != 5 || string(p) != "world" || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt(6) = %d %q %v", n, p, err)
	}
	if n, err := f.ReadAt(p, 8); n != 3 || err != io.EOF {
		t.Fatalf("ReadAt past end = %d, %v; want 3, io.EOF", n, err)
	}
}

func testCreateTruncates(t *testing.T, fsys wal.FS) {
	create(t, fsys, "f", "long content")
	create(t, fsys, "f", "short")
	if got := contentOf(t, fsys, "f"); got != "short" {
		t.Fatalf("content %q", got)
	}
}

func testOpenIsReadOnly(t *testing.T, fsys wal.FS) {
	create(t, fsys, "f", "x")
	f, err := fsys.Open("f")
	must(t, err)
	defer f.Close()
	if _, err := f.Write([]byte("y")); err == nil {
		t.Fatal("Write on a file from Open succeeded")
	}
}

func testOpenAppendOffset(t *testing.T, fsys wal.FS) {
	create(t, fsys, "f", "abc")
	f, err := fsys.OpenAppend("f")
	must(t, err)
	_, err = f.Write([]byte("def"))
	must(t, err)
	must(t, f.Sync())
	must(t, f.Close())
	if got := contentOf(t, fsys, "f"); got != "abcdef" {
		t.Fatalf("content %q", got)
	}
}

// The WAL preallocates, then writes from where it was: the writes must land
// at the offset, with any zeros the preallocation added after them.
func testPreallocateKeepsOffset(t *testing.T, fsys wal.FS) {
	f, err := fsys.Create("f")
	must(t, err)
	_, err = f.Write([]byte("head"))
	must(t, err)
	must(t, f.Preallocate(4096))
	_, err = f.Write([]byte("tail"))
	must(t, err)
	must(t, f.Sync())
	must(t, f.Close())
	got := contentOf(t, fsys, "f")
	if len(got) != 8 && len(got) != 4096 {
		t.Fatalf("size %d after preallocating 4096, want 8 or 4096", len(got))
	}
	if got[:8] != "headtail" || !allZero([]byte(got[8:])) {
		t.Fatalf("content starts %q, want headtail then zeros", got[:8])
	}

	g, err := fsys.OpenAppend("f")
	must(t, err)
	must(t, g.Truncate(8))
	must(t, g.Close())
	g, err = fsys.OpenAppend("f")
	must(t, err)
	must(t, g.Preallocate(4096))
	_, err = g.Write([]byte("more"))
	must(t, err)
	must(t, g.Close())
	if got := contentOf(t, fsys, "f"); got[:12] != "headtailmore" || !allZero([]byte(got[12:])) {
		t.Fatalf("after reopen content starts %q", got[:12])
	}
}

func allZero(b []byte) bool { return bytes.Count(b, []byte{0}) == len(b) }

func testTruncate(t *testing.T, fsys wal.FS) {
	create(t, fsys, "f", "0123456789")
	f, err := fsys.OpenAppend("f")
	must(t, err)
	must(t, f.Truncate(4))
	must(t, f.Sync())
	size, err := f.Size()
	must(t, err)
	must(t, f.Close())
	if size != 4 || contentOf(t, fsys, "f") != "0123" {
		t.Fatalf("size %d content %q after Truncate(4)", size, contentOf(t, fsys, "f"))
	}
}

func testNames(t *testing.T, fsys wal.FS) {
	must(t, fsys.MkdirAll("a/b"))
	for _, n := range []string{"a/b/3", "a/b/1", "a/b/2"} {
		create(t, fsys, n, n)
	}
	must(t, fsys.Rename("a/b/3", "a/b/0"))
	must(t, fsys.Rename("a/b/2", "a/b/1")) // replaces
	must(t, fsys.Remove("a/b/0"))
	must(t, fsys.SyncDir("a/b"))
	names, err := fsys.List("a/b")
	must(t, err)
	if !slices.Equal(names, []string{"1"}) {
		t.Fatalf("List = %q, want [1]", names)
	}
	if got := contentOf(t, fsys, "a/b/1"); got != "a/b/2" {
		t.Fatalf("renamed content %q", got)
	}
	create(t, fsys, "a/z", "")
	names, err = fsys.List("a")
	must(t, err)
	if !slices.Equal(names, []string{"b", "z"}) {
		t.Fatalf("List(a) = %q, want [b z]", names)
	}
}

func testMissing(t *testing.T, fsys wal.FS) {
	if _, err := fsys.List("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List(missing) = %v, want fs.ErrNotExist", err)
	}
	if _, err := fsys.Open("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want fs.ErrNotExist", err)
	}
	if _, err := fsys.OpenAppend("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenAppend(missing) = %v, want fs.ErrNotExist", err)
	}
	if err := fsys.Remove("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove(missing) = %v, want fs.ErrNotExist", err)
	}
	if _, err := fsys.Create("nope/f"); err == nil {
		t.Error("Create in a missing dir succeeded")
	}
}
