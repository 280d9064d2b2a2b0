package memfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/core/wal/fstest"
	"github.com/detcd/detcd/core/wal/memfs"
)

func TestContract(t *testing.T) {
	fstest.Run(t, func(*testing.T) wal.FS { return memfs.New() })
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, f wal.File, s string) {
	t.Helper()
	_, err := f.Write([]byte(s))
	must(t, err)
}

// durableFile creates name with content, synced and with its name synced.
func durableFile(t *testing.T, m *memfs.FS, name, content string) wal.File {
	t.Helper()
	f, err := m.Create(name)
	must(t, err)
	write(t, f, content)
	must(t, f.Sync())
	must(t, m.SyncDir("."))
	return f
}

const missing = "<missing>"

func TestCrash(t *testing.T) {
	tests := []struct {
		name string
		ops  func(t *testing.T, m *memfs.FS)
		// keep is what tear returns; tears records the calls.
		keep      int
		sector    int
		want      map[string]string
		wantTears []string
	}{{
		name: "unsynced write lost",
		ops: func(t *testing.T, m *memfs.FS) {
			f := durableFile(t, m, "f", "abc")
			write(t, f, "def")
		},
		want:      map[string]string{"f": "abc"},
		wantTears: []string{"f:3"},
	}, {
		name: "synced write kept",
		ops: func(t *testing.T, m *memfs.FS) {
			f := durableFile(t, m, "f", "abc")
			write(t, f, "def")
			must(t, f.Sync())
		},
		want: map[string]string{"f": "abcdef"},
	}, {
		name: "torn append keeps a prefix",
		ops: func(t *testing.T, m *memfs.FS) {
			f := durableFile(t, m, "f", "abc")
			write(t, f, "defgh")
		},
		keep:      2,
		want:      map[string]string{"f": "abcde"},
		wantTears: []string{"f:5"},
	}, {
		name: "tear asking too much keeps all",
		ops: func(t *testing.T, m *memfs.FS) {
			f := durableFile(t, m, "f", "abc")
			write(t, f, "de")
		},
		keep:      100,
		want:      map[string]string{"f": "abcde"},
		wantTears: []string{"f:2"},
	}, {
		name: "torn overwrite of preallocated zeros",
		ops: func(t *testing.T, m *memfs.FS) {
			f := durableFile(t, m, "f", "ab")
			must(t, f.Preallocate(6))
			must(t, f.Sync())
			write(t, f, "cde")
		},
		keep:      2,
		want:      map[string]string{"f": "abcd\x00\x00"},
		wantTears: []string{"f:4"},
	}, {
		name: "tear reaching into preallocated zeros",
		ops: func(t *testing.T, m *memfs.FS) {
			f := durableFile(t, m, "f", "ab")
			must(t, f.Preallocate(6))
			write(t, f, "cd")
		},
		keep:      3,
		want:      map[string]string{"f": "abcd\x00"},
		wantTears: []string{"f:4"},
	}, {
		name: "bit flipped in zeros, then truncated and synced",
		ops: func(t *testing.T, m *memfs.FS) {
			f := durableFile(t, m, "f", "ab")
			must(t, f.Preallocate(6))
			must(t, f.Sync())
			must(t, m.FlipBit("f", 4, 0))
			must(t, f.Truncate(3))
			must(t, f.Sync())
			must(t, f.Preallocate(6))
		},
		want:      map[string]string{"f": "ab\x00"},
		wantTears: []string{"f:3"},
	}, {
		name: "sector tear keeps whole sectors, the rest old zeros",
		ops: func(t *testing.T, m *memfs.FS) {
			f := durableFile(t, m, "f", "ab")
			must(t, f.Preallocate(12))
			must(t, f.Sync())
			write(t, f, "cdefghij")
		},
		keep:      5,
		sector:    4,
		want:      map[string]string{"f": "abcd\x00\x00\x00\x00\x00\x00\x00\x00"},
		wantTears: []string{"f:10"},
	}, {
		name: "sector tear past the end keeps the size it reached",
		ops: func(t *testing.T, m *memfs.FS) {
			f := durableFile(t, m, "f", "ab")
			write(t, f, "cdefgh")
		},
		keep:      4,
		sector:    4,
		want:      map[string]string{"f": "abcd\x00\x00"},
		wantTears: []string{"f:6"},
	}, {
		name: "sector tear keeping everything keeps the partial last sector",
		ops: func(t *testing.T, m *memfs.FS) {
			f := durableFile(t, m, "f", "ab")
			write(t, f, "cdefg")
		},
		keep:      5,
		sector:    4,
		want:      map[string]string{"f": "abcdefg"},
		wantTears: []string{"f:5"},
	}, {
		name: "sector tear before the first boundary keeps nothing new",
		ops: func(t *testing.T, m *memfs.FS) {
			f := durableFile(t, m, "f", "ab")
			must(t, f.Preallocate(8))
			must(t, f.Sync())
			write(t, f, "cdef")
		},
		keep:      1,
		sector:    4,
		want:      map[string]string{"f": "ab\x00\x00\x00\x00\x00\x00"},
		wantTears: []string{"f:6"},
	}, {
		name: "unsynced preallocation lost",
		ops: func(t *testing.T, m *memfs.FS) {
			f := durableFile(t, m, "f", "ab")
			must(t, f.Preallocate(6))
		},
		want:      map[string]string{"f": "ab"},
		wantTears: []string{"f:4"},
	}, {
		name: "unsynced truncate lost",
		ops: func(t *testing.T, m *memfs.FS) {
			f := durableFile(t, m, "f", "abcdef")
			must(t, f.Truncate(2))
		},
		want: map[string]string{"f": "abcdef"},
	}, {
		name: "synced truncate kept",
		ops: func(t *testing.T, m *memfs.FS) {
			f := durableFile(t, m, "f", "abcdef")
			must(t, f.Truncate(2))
			must(t, f.Sync())
		},
		want: map[string]string{"f": "ab"},
	}, {
		name: "create without SyncDir lost although synced",
		ops: func(t *testing.T, m *memfs.FS) {
			f, err := m.Create("f")
			must(t, err)
			write(t, f, "abc")
			must(t, f.Sync())
		},
		want: map[string]string{"f": missing},
	}, {
		name: "create with SyncDir but unsynced data is empty",
		ops: func(t *testing.T, m *memfs.FS) {
			f, err := m.Create("f")
			must(t, err)
			write(t, f, "abc")
			must(t, m.SyncDir("."))
		},
		want:      map[string]string{"f": ""},
		wantTears: []string{"f:3"},
	}, {
		name: "rename without SyncDir rolled back",
		ops: func(t *testing.T, m *memfs.FS) {
			durableFile(t, m, "a", "x")
			must(t, m.Rename("a", "b"))
		},
		want: map[string]string{"a": "x", "b": missing},
	}, {
		name: "rename with SyncDir kept",
		ops: func(t *testing.T, m *memfs.FS) {
			durableFile(t, m, "a", "x")
			durableFile(t, m, "b", "old")
			must(t, m.Rename("a", "b"))
			must(t, m.SyncDir("."))
		},
		want: map[string]string{"a": missing, "b": "x"},
	}, {
		name: "SyncDir of another dir does not help",
		ops: func(t *testing.T, m *memfs.FS) {
			must(t, m.MkdirAll("d"))
			durableFile(t, m, "a", "x")
			must(t, m.Rename("a", "b"))
			must(t, m.SyncDir("d"))
		},
		want: map[string]string{"a": "x", "b": missing},
	}, {
		name: "remove without SyncDir rolled back",
		ops: func(t *testing.T, m *memfs.FS) {
			durableFile(t, m, "a", "x")
			must(t, m.Remove("a"))
		},
		want: map[string]string{"a": "x"},
	}, {
		name: "failed sync leaves data unsynced",
		ops: func(t *testing.T, m *memfs.FS) {
			f := durableFile(t, m, "f", "abc")
			write(t, f, "def")
			boom := errors.New("boom")
			m.SyncErr = func(name string) error { return boom }
			if err := f.Sync(); !errors.Is(err, boom) {
				t.Fatalf("Sync = %v, want boom", err)
			}
			m.SyncErr = nil
		},
		want:      map[string]string{"f": "abc"},
		wantTears: []string{"f:3"},
	}, {
		name: "failed SyncDir leaves names unsynced",
		ops: func(t *testing.T, m *memfs.FS) {
			f, err := m.Create("f")
			must(t, err)
			must(t, f.Sync())
			m.SyncErr = func(name string) error {
				if name == "." {
					return errors.New("boom")
				}
				return nil
			}
			if err := m.SyncDir("."); err == nil {
				t.Fatal("SyncDir succeeded")
			}
			m.SyncErr = nil
		},
		want: map[string]string{"f": missing},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := memfs.New()
			m.SectorBytes = tt.sector
			tt.ops(t, m)
			var tears []string
			m.Crash(func(name string, n int) int {
				tears = append(tears, name+":"+strconv.Itoa(n))
				return tt.keep
			})
			if !slices.Equal(tears, tt.wantTears) {
				t.Errorf("tear calls %q, want %q", tears, tt.wantTears)
			}
			for name, want := range tt.want {
				got, err := m.ReadFile(name)
				if want == missing {
					if !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("%s: ReadFile = %q, %v; want missing", name, got, err)
					}
					continue
				}
				if err != nil || string(got) != want {
					t.Errorf("%s: ReadFile = %q, %v; want %q", name, got, err, want)
				}
			}
			// What survived a crash is durable: a second crash changes nothing.
			before := snapshot(m, tt.want)
			m.Crash(func(name string, n int) int {
				t.Errorf("second crash tears %s:%d", name, n)
				return 0
			})
			if after := snapshot(m, tt.want); after != before {
				t.Errorf("second crash changed %q to %q", before, after)
			}
		})
	}
}

func snapshot(m *memfs.FS, names map[string]string) string {
	var s string
	for _, n := range []string{"a", "b", "f"} {
		if _, ok := names[n]; ok {
			b, err := m.ReadFile(n)
			s += n + "=" + string(b) + "/" + errString(err) + ";"
		}
	}
	return s
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestHandlesDieAtCrash(t *testing.T) {
	m := memfs.New()
	f := durableFile(t, m, "f", "abc")
	m.Crash(nil)
	if _, err := f.Write([]byte("x")); !errors.Is(err, memfs.ErrCrashed) {
		t.Errorf("Write after crash = %v, want ErrCrashed", err)
	}
	if err := f.Sync(); !errors.Is(err, memfs.ErrCrashed) {
		t.Errorf("Sync after crash = %v, want ErrCrashed", err)
	}
	g, err := m.Open("f")
	must(t, err)
	b, err := io.ReadAll(g)
	if err != nil || string(b) != "abc" {
		t.Errorf("reopened content %q, %v", b, err)
	}
	must(t, g.Close())
	if err := g.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("second Close = %v, want fs.ErrClosed", err)
	}
}

func TestFlipBit(t *testing.T) {
	m := memfs.New()
	f := durableFile(t, m, "f", "abc")
	write(t, f, "def") // unsynced: not reachable by FlipBit
	tests := []struct {
		off     int64
		bit     uint
		wantErr bool
	}{
		{off: 1, bit: 0},
		{off: 2, bit: 7},
		{off: 3, bit: 0, wantErr: true},
		{off: -1, bit: 0, wantErr: true},
		{off: 0, bit: 8, wantErr: true},
	}
	for _, tt := range tests {
		if err := m.FlipBit("f", tt.off, tt.bit); (err != nil) != tt.wantErr {
			t.Errorf("FlipBit(%d, %d) = %v, wantErr %v", tt.off, tt.bit, err, tt.wantErr)
		}
	}
	want := "a" + string(rune('b'^1)) + string([]byte{'c' ^ 0x80})
	if got, _ := m.ReadFile("f"); string(got) != want+"def" {
		t.Errorf("current content %q, want %q", got, want+"def")
	}
	m.Crash(nil)
	if got, _ := m.ReadFile("f"); string(got) != want {
		t.Errorf("durable content %q, want %q", got, want)
	}
	if err := m.FlipBit("nope", 0, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("FlipBit(missing) = %v", err)
	}
}

func TestRemoveAll(t *testing.T) {
	m := memfs.New()
	must(t, m.MkdirAll("d/wal"))
	durableFile(t, m, "d/wal/a", "x")
	durableFile(t, m, "d/keep", "y")
	durableFile(t, m, "dd", "z")
	must(t, m.SyncDir("d"))
	must(t, m.SyncDir("d/wal"))
	must(t, m.RemoveAll("d/wal"))
	m.Crash(nil)
	if _, err := m.List("d/wal"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List(d/wal) after RemoveAll and a crash = %v, want ErrNotExist", err)
	}
	for name, want := range map[string]string{"d/keep": "y", "dd": "z"} {
		if got, err := m.ReadFile(name); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	if err := m.RemoveAll("."); err == nil {
		t.Error("RemoveAll(.) succeeded")
	}
}

func TestFileBytesMax(t *testing.T) {
	m := memfs.New()
	f, err := m.Create("f")
	must(t, err)
	if err := f.Preallocate(memfs.FileBytesMax + 1); err == nil {
		t.Error("Preallocate past FileBytesMax succeeded")
	}
	if err := f.Truncate(-1); err == nil {
		t.Error("Truncate(-1) succeeded")
	}
}

// TestTornGarbage: with TornGarbage set, a torn write may leave garbage
// in the unsynced bytes of the one sector it was writing, never in synced
// bytes, never elsewhere.
func TestTornGarbage(t *testing.T) {
	tests := []struct {
		name     string
		keep     int
		garbage  bool
		want     string
		wantCall string
	}{
		{"the sector past the kept ones", 5, true, "abcdXXXX\x00\x00\x00\x00", "f:2:4+4"},
		{"only unsynced bytes of a sector it shares with synced ones", 1, true, "abXX\x00\x00\x00\x00\x00\x00\x00\x00", "f:2:2+2"},
		{"nil keeps the old content", 5, false, "abcd\x00\x00\x00\x00\x00\x00\x00\x00", "f:2:4+4"},
		{"a write kept whole was not torn", 10, true, "abcdefghij\x00\x00", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := memfs.New()
			m.SectorBytes = 4
			var call string
			m.TornGarbage = func(name string, from, off, n int) []byte {
				call = fmt.Sprintf("%s:%d:%d+%d", name, from, off, n)
				if !tt.garbage {
					return nil
				}
				return bytes.Repeat([]byte("X"), n)
			}
			f := durableFile(t, m, "f", "ab")
			must(t, f.Preallocate(12))
			must(t, f.Sync())
			write(t, f, "cdefghij")
			m.Crash(func(string, int) int { return tt.keep })
			got, err := m.ReadFile("f")
			if err != nil || string(got) != tt.want {
				t.Errorf("ReadFile = %q, %v; want %q", got, err, tt.want)
			}
			if call != tt.wantCall {
				t.Errorf("TornGarbage called as %q, want %q", call, tt.wantCall)
			}
		})
	}
}

// TestTornGarbageOnlyInWrittenBytes: zeros a preallocation added were
// never written by the disk, so a crash leaves no garbage among them.
func TestTornGarbageOnlyInWrittenBytes(t *testing.T) {
	m := memfs.New()
	m.SectorBytes = 4
	m.TornGarbage = func(name string, from, off, n int) []byte {
		t.Errorf("garbage in %s at %d+%d: only preallocated zeros are unsynced there", name, off, n)
		return nil
	}
	f := durableFile(t, m, "f", "ab")
	write(t, f, "cd")
	must(t, f.Preallocate(24))
	m.Crash(func(string, int) int { return 9 })
	got, err := m.ReadFile("f")
	if err != nil || string(got) != "abcd"+strings.Repeat("\x00", 7) {
		t.Errorf("ReadFile = %q, %v", got, err)
	}
}
