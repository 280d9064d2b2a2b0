package disk_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"path"
	"strings"
	"testing"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/core/wal/memfs"
	"github.com/detcd/detcd/disk"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func config() core.Config {
	return core.Config{ID: 1, ClusterID: 7, Members: []core.Member{{ID: 1, Name: "m1", PeerURLs: []string{"http://m1:2380"}}}}
}

// bootstrapped returns a data directory "data" whose member was created
// and stopped.
func bootstrapped(t *testing.T) *memfs.FS {
	t.Helper()
	m := memfs.New()
	must(t, m.MkdirAll("data"))
	_, d, err := disk.Open(m, "data", config(), disk.Options{})
	must(t, err)
	must(t, d.Close())
	return m
}

func checkpoint(t *testing.T, m *memfs.FS, index uint64) {
	t.Helper()
	must(t, wal.WriteCheckpoint(m, "data/member/snap", index, func(w io.Writer) error {
		_, err := w.Write([]byte("state"))
		return err
	}))
}

// removeSegments deletes every log segment but leaves member/wal.
func removeSegments(t *testing.T, m *memfs.FS) {
	t.Helper()
	names, err := m.List("data/member/wal")
	must(t, err)
	for _, n := range names {
		must(t, m.Remove(path.Join("data/member/wal", n)))
	}
	must(t, m.SyncDir("data/member/wal"))
}

// A data directory that lost its log while signs of the member remain is
// refused, never started as a new member; one that never finished being
// created starts afresh.
func TestLostLog(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, m *memfs.FS)
		// wantMsg are in the refusal; none means Open must succeed.
		wantMsg []string
	}{{
		name: "segments deleted, checkpoint left",
		damage: func(t *testing.T, m *memfs.FS) {
			checkpoint(t, m, 42)
			removeSegments(t, m)
		},
		wantMsg: []string{"data/member/wal holds no log segments", "newest at index 42", "member remove", "snapshot restore"},
	}, {
		name: "wal directory removed, checkpoint left",
		damage: func(t *testing.T, m *memfs.FS) {
			checkpoint(t, m, 42)
			must(t, m.RemoveAll("data/member/wal"))
		},
		wantMsg: []string{"1 checkpoint(s)", "marker data/member/initialized"},
	}, {
		name: "wal directory removed, no checkpoint yet",
		damage: func(t *testing.T, m *memfs.FS) {
			must(t, m.RemoveAll("data/member/wal"))
		},
		wantMsg: []string{"marker data/member/initialized"},
	}, {
		name: "whole member directory removed",
		damage: func(t *testing.T, m *memfs.FS) {
			must(t, m.RemoveAll("data/member"))
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := bootstrapped(t)
			tt.damage(t, m)
			_, d, err := disk.Open(m, "data", config(), disk.Options{})
			if len(tt.wantMsg) == 0 {
				must(t, err)
				must(t, d.Close())
				return
			}
			if !errors.Is(err, disk.ErrLogMissing) {
				t.Fatalf("Open = %v, want ErrLogMissing", err)
			}
			for _, w := range tt.wantMsg {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			// Nothing was created: the same refusal again.
			if _, _, err2 := disk.Open(m, "data", config(), disk.Options{}); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("second Open = %v", err2)
			}
		})
	}
}

// A bootstrap that crashed before the log's first segment was renamed into
// place left no sign of a member: the next start bootstraps again.
func TestInterruptedBootstrap(t *testing.T) {
	m := memfs.New()
	must(t, m.MkdirAll("data/member/wal"))
	must(t, m.MkdirAll("data/member/snap"))
	f, err := m.Create("data/member/wal/0000000000000000-0000000000000000.wal.tmp")
	must(t, err)
	must(t, f.Close())
	must(t, m.SyncDir("data/member/wal"))
	_, d, err := disk.Open(m, "data", config(), disk.Options{})
	must(t, err)
	must(t, d.Close())
}

// A data directory from before the marker gets it at its next restart, so
// that losing its log later is caught even without a checkpoint.
func TestMarkerAddedAtRestart(t *testing.T) {
	m := bootstrapped(t)
	must(t, m.Remove("data/member/initialized"))
	must(t, m.SyncDir("data/member"))
	_, d, err := disk.Open(m, "data", config(), disk.Options{})
	must(t, err)
	must(t, d.Close())
	must(t, m.RemoveAll("data/member/wal"))
	if _, _, err := disk.Open(m, "data", config(), disk.Options{}); !errors.Is(err, disk.ErrLogMissing) {
		t.Fatalf("Open = %v, want ErrLogMissing", err)
	}
}

// Restore refuses a directory with a leftover checkpoint: a newer one
// there would be loaded instead of the restored state.
func TestRestoreRefusesLeftovers(t *testing.T) {
	m := memfs.New()
	must(t, m.MkdirAll("data"))
	checkpoint(t, m, 1000)
	err := disk.Restore(m, "data", config(), core.Backup{}, core.RestoreOptions{}, disk.Options{})
	if !errors.Is(err, disk.ErrLogMissing) || !strings.Contains(err.Error(), "restore into a new data directory") {
		t.Fatalf("Restore = %v, want ErrLogMissing", err)
	}
}

// A log whose hard state commits entries it no longer holds is refused
// with an error, where raft would panic.
func TestCommitPastLog(t *testing.T) {
	m := bootstrapped(t)
	w, _, err := wal.Open(m, wal.Options{Dir: "data/member/wal"}, 0)
	must(t, err)
	must(t, w.Save(&wal.HardState{Term: 2, Commit: 5}, []wal.Entry{{Term: 2, Index: 1}}))
	must(t, w.Close())
	_, _, err = disk.Open(m, "data", config(), disk.Options{})
	if !errors.Is(err, core.ErrCorrupt) || !strings.Contains(err.Error(), "commits index 5") {
		t.Fatalf("Open = %v, want ErrCorrupt about commit 5", err)
	}
}

// --unsafe-wal-repair cuts a corrupt final record and logs what it cut.
func TestUnsafeWALRepair(t *testing.T) {
	m := bootstrapped(t)
	w, _, err := wal.Open(m, wal.Options{Dir: "data/member/wal"}, 0)
	must(t, err)
	must(t, w.Save(&wal.HardState{Term: 2, Commit: 1}, []wal.Entry{{Term: 2, Index: 1}}))
	must(t, w.Save(nil, []wal.Entry{{Term: 2, Index: 2, Data: []byte("x")}}))
	must(t, w.Close())
	names, err := m.List("data/member/wal")
	must(t, err)
	seg := "data/member/wal/" + names[0]
	b, err := m.ReadFile(seg)
	must(t, err)
	end := int64(len(bytes.TrimRight(b, "\x00")))
	must(t, m.FlipBit(seg, end-1, 0))
	if _, _, err := disk.Open(m, "data", config(), disk.Options{}); !errors.Is(err, wal.ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	n, d, err := disk.Open(m, "data", config(), disk.Options{UnsafeWALRepair: true, Logger: log})
	must(t, err)
	defer d.Close()
	if n.LastIndex() != 1 {
		t.Errorf("last index %d after the repair, want 1", n.LastIndex())
	}
	for _, w := range []string{"level=WARN", "unsafe-wal-repair", "file=" + seg, "offset=", "dropped-bytes="} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("log %q does not say %q", logs.String(), w)
		}
	}
}
