package wal_test

import (
	"path"
	"strings"
	"testing"

	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/core/wal/memfs"
)

// corruptFixture is a synced, closed WAL of several segments.
func corruptFixture(t *testing.T) (*memfs.FS, []string) {
	m := memfs.New()
	w := create(t, m, 1024)
	for lo := uint64(1); lo <= 60; lo += 3 {
		save(t, w, hardState(1, lo+2), entries(1, lo, lo+2))
	}
	must(t, w.Close())
	segs := segments(t, m)
	if len(segs) < 3 {
		t.Fatalf("only %d segments", len(segs))
	}
	return m, segs
}

// offsets are the record offsets of a segment, then its data end.
func offsets(t *testing.T, m *memfs.FS, seg string) []int64 {
	return wal.RecordOffsets(readFile(t, m, seg))
}

func zeroBytes(t *testing.T, m *memfs.FS, seg string, off int64, n int) {
	b := readFile(t, m, seg)
	for i := off; i < off+int64(n); i++ {
		for bit := uint(0); bit < 8; bit++ {
			if b[i]&(1<<bit) != 0 {
				must(t, m.FlipBit(path.Join(dir, seg), i, bit))
			}
		}
	}
}

func TestCorruption(t *testing.T) {
	tests := []struct {
		name string
		// damage changes the fixture and returns where the error must
		// point (offset -1: any).
		damage func(t *testing.T, m *memfs.FS, segs []string) (string, int64)
	}{{
		name: "payload bit in a middle record of the last segment",
		damage: func(t *testing.T, m *memfs.FS, segs []string) (string, int64) {
			last := segs[len(segs)-1]
			offs := offsets(t, m, last)
			rec := offs[len(offs)/2]
			must(t, m.FlipBit(path.Join(dir, last), rec+recordBodyOffset+3, 4))
			return last, rec
		},
	}, {
		name: "length bit in a middle record of the last segment",
		damage: func(t *testing.T, m *memfs.FS, segs []string) (string, int64) {
			last := segs[len(segs)-1]
			offs := offsets(t, m, last)
			rec := offs[len(offs)/2]
			must(t, m.FlipBit(path.Join(dir, last), rec, 2))
			return last, rec
		},
	}, {
		name: "length checksum bit in a middle record",
		damage: func(t *testing.T, m *memfs.FS, segs []string) (string, int64) {
			last := segs[len(segs)-1]
			offs := offsets(t, m, last)
			rec := offs[len(offs)/2]
			must(t, m.FlipBit(path.Join(dir, last), rec+5, 0))
			return last, rec
		},
	}, {
		name: "final record of a segment that is not the last",
		damage: func(t *testing.T, m *memfs.FS, segs []string) (string, int64) {
			offs := offsets(t, m, segs[0])
			rec := offs[len(offs)-2]
			must(t, m.FlipBit(path.Join(dir, segs[0]), rec+recordBodyOffset+1, 0))
			return segs[0], rec
		},
	}, {
		name: "segment header",
		damage: func(t *testing.T, m *memfs.FS, segs []string) (string, int64) {
			must(t, m.FlipBit(path.Join(dir, segs[1]), recordBodyOffset+2, 0))
			return segs[1], 0
		},
	}, {
		name: "segment that is not the last cut short",
		damage: func(t *testing.T, m *memfs.FS, segs []string) (string, int64) {
			offs := offsets(t, m, segs[0])
			f, err := m.OpenAppend(path.Join(dir, segs[0]))
			must(t, err)
			must(t, f.Truncate(offs[len(offs)-1]-5))
			must(t, f.Sync())
			return segs[0], offs[len(offs)-2]
		},
	}, {
		name: "segment that is not the last with zeros after its data",
		damage: func(t *testing.T, m *memfs.FS, segs []string) (string, int64) {
			offs := offsets(t, m, segs[0])
			f, err := m.OpenAppend(path.Join(dir, segs[0]))
			must(t, err)
			must(t, f.Preallocate(offs[len(offs)-1]+100))
			must(t, f.Sync())
			return segs[0], offs[len(offs)-1]
		},
	}, {
		name: "zeroed header with records after it in the last segment",
		damage: func(t *testing.T, m *memfs.FS, segs []string) (string, int64) {
			last := segs[len(segs)-1]
			offs := offsets(t, m, last)
			rec := offs[len(offs)/2]
			zeroBytes(t, m, last, rec, 12)
			return last, rec
		},
	}, {
		name: "missing middle segment",
		damage: func(t *testing.T, m *memfs.FS, segs []string) (string, int64) {
			must(t, m.Remove(path.Join(dir, segs[1])))
			return segs[2], 0
		},
	}, {
		name: "segment renamed to another first index",
		damage: func(t *testing.T, m *memfs.FS, segs []string) (string, int64) {
			seq, first, _ := wal.ParseSegmentName(segs[1])
			renamed := segs[1][:17] + segs[0][17:]
			if s, f, ok := wal.ParseSegmentName(renamed); !ok || s != seq || f == first {
				t.Fatalf("bad rename %s", renamed)
			}
			must(t, m.Rename(path.Join(dir, segs[1]), path.Join(dir, renamed)))
			return renamed, 0
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, segs := corruptFixture(t)
			file, off := tt.damage(t, m, segs)
			_, _, err := wal.Open(m, opts(1024), 0)
			t.Log(err)
			checkCorrupt(t, err, file, off)
			// Refusing must not have changed anything: the same error again.
			_, _, err2 := wal.Open(m, opts(1024), 0)
			if err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("second Open: %v, first: %v", err2, err)
			}
		})
	}
}

// Segments wholly covered by the checkpoint index are not read, so damage
// there does not stop recovery.
func TestCorruptionInSkippedSegment(t *testing.T) {
	m, segs := corruptFixture(t)
	offs := offsets(t, m, segs[0])
	must(t, m.FlipBit(path.Join(dir, segs[0]), offs[len(offs)-2]+recordBodyOffset+1, 0))
	_, first, _ := wal.ParseSegmentName(segs[2])
	_, rec := open(t, m, 1024, first-1)
	var model logModel
	model.add(entries(1, 1, 60))
	checkEntries(t, rec.Entries, model.after(first-1))
}

func TestIndexGap(t *testing.T) {
	m := memfs.New()
	w := create(t, m, 4096)
	save(t, w, nil, entries(1, 1, 5))
	// Save allows a jump ahead (as after installing a checkpoint); recovery
	// accepts it only if the checkpoint covers the skipped indexes.
	save(t, w, nil, entries(1, 7, 9))
	must(t, w.Close())
	seg := segments(t, m)[0]
	offs := offsets(t, m, seg)
	entry7 := offs[2+5] // header, hard state copy, entries 1..5
	for _, after := range []uint64{0, 3, 5} {
		_, _, err := wal.Open(m, opts(4096), after)
		checkCorrupt(t, err, seg, entry7)
	}
	for _, after := range []uint64{6, 8} {
		_, rec := open(t, m, 4096, after)
		checkEntries(t, rec.Entries, entries(1, after+1, 9))
	}
}

// Segments deleted from the front or the middle of the log are refused
// with an error that says what is missing, unless a checkpoint covers
// them (as after DetachTo and RemoveSegments).
func TestMissingSegments(t *testing.T) {
	tests := []struct {
		name string
		// remove returns the segments to delete and the checkpoint index.
		remove func(segs []string) ([]string, uint64)
		// errAt is the segment the error names, nil for no error; wantMsg
		// must be in the error.
		errAt   func(segs []string) string
		wantMsg string
	}{{
		name:    "middle segment",
		remove:  func(segs []string) ([]string, uint64) { return segs[1:2], 0 },
		errAt:   func(segs []string) string { return segs[2] },
		wantMsg: "the segment of sequence 1 (0000000000000001-*.wal) is missing",
	}, {
		name:    "oldest segment, no checkpoint",
		remove:  func(segs []string) ([]string, uint64) { return segs[:1], 0 },
		errAt:   func(segs []string) string { return segs[1] },
		wantMsg: "newest checkpoint covers only up to index 0: entries 1 to",
	}, {
		name: "every segment but the last, checkpoint short of it",
		remove: func(segs []string) ([]string, uint64) {
			_, first, _ := wal.ParseSegmentName(segs[len(segs)-1])
			return segs[:len(segs)-1], first - 2
		},
		errAt:   func(segs []string) string { return segs[len(segs)-1] },
		wantMsg: "entries 48 to 48 are missing",
	}, {
		name: "oldest segments covered by the checkpoint",
		remove: func(segs []string) ([]string, uint64) {
			_, first, _ := wal.ParseSegmentName(segs[2])
			return segs[:2], first - 1
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, segs := corruptFixture(t)
			gone, after := tt.remove(segs)
			for _, s := range gone {
				must(t, m.Remove(path.Join(dir, s)))
			}
			_, rec, err := wal.Open(m, opts(1024), after)
			if tt.errAt == nil {
				must(t, err)
				var model logModel
				model.add(entries(1, 1, 60))
				checkEntries(t, rec.Entries, model.after(after))
				return
			}
			checkCorrupt(t, err, tt.errAt(segs), 0)
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %q does not say %q", err, tt.wantMsg)
			}
		})
	}
}
