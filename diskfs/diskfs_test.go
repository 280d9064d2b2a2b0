package diskfs_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/core/wal/fstest"
	"github.com/detcd/detcd/diskfs"
)

func TestContract(t *testing.T) {
	fstest.Run(t, func(t *testing.T) wal.FS { return diskfs.New(t.TempDir()) })
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func entries(lo, hi uint64) []wal.Entry {
	var out []wal.Entry
	for i := lo; i <= hi; i++ {
		out = append(out, wal.Entry{Term: 1 + i/50, Index: i, Data: []byte(fmt.Sprintf("entry %d", i))})
	}
	return out
}

func TestWALRoundTrip(t *testing.T) {
	const segBytes = 2048
	root := t.TempDir()
	fsys := diskfs.New(root)
	opts := wal.Options{Dir: "member/wal", SegmentBytes: segBytes}

	w, err := wal.Create(fsys, opts, []byte("meta"))
	must(t, err)
	for lo := uint64(1); lo <= 300; lo += 10 {
		must(t, w.Save(&wal.HardState{Term: 1, Commit: lo}, entries(lo, lo+9)))
		must(t, w.Sync())
	}
	must(t, w.Close())

	segs, err := filepath.Glob(filepath.Join(root, "member/wal/*.wal"))
	must(t, err)
	if len(segs) < 3 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	// Finished segments are cut to their data; the last one is preallocated
	// (unless the file system cannot).
	last, err := os.Stat(segs[len(segs)-1])
	must(t, err)
	t.Logf("last segment size %d", last.Size())

	for _, after := range []uint64{0, 150} {
		w, rec, err := wal.Open(fsys, opts, after)
		must(t, err)
		if string(rec.Meta) != "meta" || rec.HardState.Commit != 291 || rec.TornTail != "" {
			t.Fatalf("recovered meta %q hard state %+v torn %q", rec.Meta, rec.HardState, rec.TornTail)
		}
		checkEntries(t, rec.Entries, entries(after+1, 300))
		must(t, w.Close())
	}

	// Reopen, append into the preallocated segment, reopen.
	w, _, err = wal.Open(fsys, opts, 0)
	must(t, err)
	must(t, w.Save(&wal.HardState{Term: 7, Commit: 301}, entries(301, 305)))
	must(t, w.Sync())
	// No Close: a killed process leaves its written, synced data behind.
	_, rec, err := wal.Open(fsys, opts, 0)
	must(t, err)
	checkEntries(t, rec.Entries, entries(1, 305))
	if rec.HardState.Commit != 301 || rec.TornTail != "" {
		t.Fatalf("hard state %+v torn %q", rec.HardState, rec.TornTail)
	}
}

func TestPreallocate(t *testing.T) {
	fsys := diskfs.New(t.TempDir())
	f, err := fsys.Create("f")
	must(t, err)
	_, err = f.Write([]byte("abc"))
	must(t, err)
	must(t, f.Preallocate(1<<16))
	size, err := f.Size()
	must(t, err)
	if size != 3 && size != 1<<16 {
		t.Fatalf("size %d after Preallocate", size)
	}
	_, err = f.Write([]byte("def"))
	must(t, err)
	must(t, f.Sync())
	must(t, f.Close())
	g, err := fsys.Open("f")
	must(t, err)
	b, err := io.ReadAll(g)
	must(t, err)
	must(t, g.Close())
	if !bytes.HasPrefix(b, []byte("abcdef")) || bytes.IndexFunc(b[6:], func(r rune) bool { return r != 0 }) >= 0 {
		t.Fatalf("content %q...", b[:min(len(b), 16)])
	}
}

func TestCheckpoint(t *testing.T) {
	fsys := diskfs.New(t.TempDir())
	// Chunks enough to be read into a buffer of huge pages (AllocBuffer).
	content := bytes.Repeat([]byte("checkpoint "), 1_000_000)
	must(t, wal.WriteCheckpoint(fsys, "snap", 12, func(w io.Writer) error {
		_, err := w.Write(content)
		return err
	}))
	idx, err := wal.ListCheckpoints(fsys, "snap")
	must(t, err)
	if len(idx) != 1 || idx[0] != 12 {
		t.Fatalf("ListCheckpoints = %v", idx)
	}
	got, err := wal.ReadCheckpoint(fsys, "snap", 12)
	must(t, err)
	if !bytes.Equal(got, content) {
		t.Fatal("content differs")
	}
	must(t, wal.RemoveCheckpoint(fsys, "snap", 12))
}

// AllocBuffer gives zeroed buffers of the size asked, small or backed by
// huge pages.
func TestAllocBuffer(t *testing.T) {
	a, ok := diskfs.New(t.TempDir()).(wal.BufferAllocator)
	if !ok {
		t.Fatal("diskfs allocates no buffers")
	}
	for _, n := range []int{0, 1, 4096, 8<<20 + 1, 19 << 20} {
		b := a.AllocBuffer(n)
		if zeroed := !bytes.ContainsFunc(b, func(r rune) bool { return r != 0 }); len(b) != n || !zeroed {
			t.Fatalf("AllocBuffer(%d): %d bytes, zeroed %v", n, len(b), zeroed)
		}
		for i := range b {
			b[i] = byte(i)
		}
	}
}

func TestEscapingNamesRejected(t *testing.T) {
	fsys := diskfs.New(t.TempDir())
	for _, name := range []string{"../x", "/etc/passwd", ""} {
		if _, err := fsys.Create(name); err == nil {
			t.Errorf("Create(%q) succeeded", name)
		}
	}
}

func checkEntries(t *testing.T, got, want []wal.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Index != want[i].Index || got[i].Term != want[i].Term || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
