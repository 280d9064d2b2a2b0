package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/disk"
)

// TestRefusesDamagedDataDir starts a real server on a data directory that
// lost its log or holds a rotten record: it refuses with an error saying
// what is wrong, where, and never serves an empty or shortened key space.
func TestRefusesDamagedDataDir(t *testing.T) {
	tests := []struct {
		name string
		// damage changes the stopped member's data dir and returns what
		// the error must say.
		damage  func(t *testing.T, dir string) []string
		wantErr error
	}{{
		name: "wal directory removed",
		damage: func(t *testing.T, dir string) []string {
			if err := os.RemoveAll(filepath.Join(dir, "member", "wal")); err != nil {
				t.Fatal(err)
			}
			return []string{dir, "member/wal holds no log segments", "member remove", "snapshot restore"}
		},
		wantErr: disk.ErrLogMissing,
	}, {
		name: "every segment deleted",
		damage: func(t *testing.T, dir string) []string {
			segs, _ := filepath.Glob(filepath.Join(dir, "member", "wal", "*.wal"))
			for _, s := range segs {
				if err := os.Remove(s); err != nil {
					t.Fatal(err)
				}
			}
			return []string{"holds no log segments"}
		},
		wantErr: disk.ErrLogMissing,
	}, {
		name: "bit flipped in the last synced record",
		damage: func(t *testing.T, dir string) []string {
			seg, off := lastWrittenByte(t, dir)
			flipByte(t, seg, off)
			return []string{filepath.Base(seg), "offset", "record checksum mismatch in a complete record"}
		},
		wantErr: wal.ErrCorrupt,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, cli := testServer(t, dir, nil)
			for i := range 20 {
				if _, err := cli.Put(ctx(t), fmt.Sprintf("k%02d", i), "v"); err != nil {
					t.Fatal(err)
				}
			}
			cli.Close()
			if err := s.Stop(); err != nil {
				t.Fatal(err)
			}
			want := tt.damage(t, dir)
			cfg := DefaultConfig()
			cfg.DataDir = dir
			cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			_, err := New(cfg)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("New = %v, want %v", err, tt.wantErr)
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestUnsafeWALRepairStarts: the repair flag starts a member over a rotten
// final record, cutting it with a WARN that names the file and offset.
func TestUnsafeWALRepairStarts(t *testing.T) {
	dir := t.TempDir()
	s, cli := testServer(t, dir, nil)
	if _, err := cli.Put(ctx(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	cli.Close()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	seg, off := lastWrittenByte(t, dir)
	flipByte(t, seg, off)
	var logs bytes.Buffer
	_, _ = testServer(t, dir, func(c *Config) {
		c.UnsafeWALRepair = true
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	for _, w := range []string{"level=WARN", "unsafe-wal-repair", filepath.Base(seg), "offset=", "dropped-bytes="} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("log does not say %q:\n%s", w, logs.String())
		}
	}
}

// lastWrittenByte finds the newest log segment and the offset of its last
// non-zero byte: inside the last record written.
func lastWrittenByte(t *testing.T, dir string) (string, int64) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "member", "wal", "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments %v, %v", segs, err)
	}
	seg := segs[len(segs)-1]
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	return seg, int64(len(bytes.TrimRight(b, "\x00"))) - 1
}

func flipByte(t *testing.T, file string, off int64) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
