package wal_test

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/core/wal/memfs"
)

func TestRoundTrip(t *testing.T) {
	const segBytes = 1024
	m := memfs.New()
	w := create(t, m, segBytes)
	var model logModel
	var hs *wal.HardState
	for lo := uint64(1); lo <= 300; {
		hi := lo + lo%7 // batches of 1 to 7 entries
		ents := entries(1, lo, hi)
		hs = hardState(lo/50+1, lo)
		save(t, w, hs, ents)
		model.add(ents)
		lo = hi + 1
	}
	must(t, w.Close())
	if n := len(segments(t, m)); n < 5 {
		t.Fatalf("only %d segments; the test wants several", n)
	}

	for _, after := range []uint64{0, 1, 57, 150, 299, model.ents[len(model.ents)-1].Index, 1000} {
		w, rec := open(t, m, segBytes, after)
		checkEntries(t, rec.Entries, model.after(after))
		if rec.HardState != *hs {
			t.Fatalf("after %d: hard state %+v, want %+v", after, rec.HardState, *hs)
		}
		if rec.TornTail != "" {
			t.Fatalf("after %d: torn tail %q on a clean close", after, rec.TornTail)
		}
		must(t, w.Close())
	}

	// Appending after a reopen continues the same log.
	w, _ = open(t, m, segBytes, 0)
	last := model.ents[len(model.ents)-1].Index
	more := entries(2, last+1, last+40)
	save(t, w, hardState(9, last+40), more)
	model.add(more)
	must(t, w.Close())
	_, rec := open(t, m, segBytes, 0)
	checkEntries(t, rec.Entries, model.after(0))
	if rec.HardState != *hardState(9, last+40) {
		t.Fatalf("hard state %+v", rec.HardState)
	}
}

func TestOverwrite(t *testing.T) {
	tests := []struct {
		name     string
		segBytes int64
		batches  [][]wal.Entry
		after    uint64
	}{
		{"tail", 1 << 20, [][]wal.Entry{entries(1, 1, 10), entries(2, 6, 8)}, 0},
		{"tail after index", 1 << 20, [][]wal.Entry{entries(1, 1, 10), entries(2, 6, 8)}, 4},
		{"across segments", 300, [][]wal.Entry{entries(1, 1, 10), entries(1, 11, 20), entries(2, 3, 5)}, 0},
		{"twice", 300, [][]wal.Entry{entries(1, 1, 20), entries(2, 10, 15), entries(3, 12, 13), entries(3, 14, 30)}, 11},
		{"at after index", 1 << 20, [][]wal.Entry{entries(1, 1, 10), entries(2, 5, 12)}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := memfs.New()
			w := create(t, m, tt.segBytes)
			var model logModel
			for _, b := range tt.batches {
				save(t, w, nil, b)
				model.add(b)
			}
			must(t, w.Close())
			_, rec := open(t, m, tt.segBytes, tt.after)
			checkEntries(t, rec.Entries, model.after(tt.after))
		})
	}
}

func TestCreate(t *testing.T) {
	m := memfs.New()
	if ok, err := wal.Exists(m, dir); ok || err != nil {
		t.Fatalf("Exists before Create = %v, %v", ok, err)
	}
	if _, _, err := wal.Open(m, opts(0), 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open before Create = %v, want fs.ErrNotExist", err)
	}
	w := create(t, m, 0)
	must(t, w.Close())
	if ok, err := wal.Exists(m, dir); !ok || err != nil {
		t.Fatalf("Exists after Create = %v, %v", ok, err)
	}
	if _, err := wal.Create(m, opts(0), meta); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Create = %v, want fs.ErrExist", err)
	}
	// Create is durable by itself.
	m.Crash(nil)
	// A segment whose creation never finished is no part of the log.
	const leftover = dir + "/0000000000000001-0000000000000005.wal.tmp"
	f, err := m.Create(leftover)
	must(t, err)
	must(t, f.Close())
	_, rec := open(t, m, 0, 0)
	if len(rec.Entries) != 0 || rec.HardState != (wal.HardState{}) {
		t.Fatalf("fresh WAL recovered %+v", rec)
	}
	if _, err := m.ReadFile(leftover); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("leftover still there after Open: %v", err)
	}
}

func TestCreateCrashLeavesNoWAL(t *testing.T) {
	m := memfs.New()
	m.SyncErr = func(name string) error {
		if name == dir {
			return errors.New("boom")
		}
		return nil
	}
	if _, err := wal.Create(m, opts(0), meta); err == nil {
		t.Fatal("Create succeeded although its directory sync failed")
	}
	m.SyncErr = nil
	m.Crash(func(string, int) int { return 1 << 20 })
	if ok, err := wal.Exists(m, dir); ok || err != nil {
		t.Fatalf("Exists after a failed Create and a crash = %v, %v", ok, err)
	}
	w := create(t, m, 0)
	must(t, w.Close())
}

func TestSaveRejects(t *testing.T) {
	tests := []struct {
		name string
		ents []wal.Entry
	}{
		{"index 0", []wal.Entry{{Index: 0}}},
		{"not contiguous", []wal.Entry{{Index: 3}, {Index: 5}}},
		{"going back", []wal.Entry{{Index: 3}, {Index: 2}}},
		{"too large", []wal.Entry{{Index: 1, Data: make([]byte, wal.RecordBytesMax)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := create(t, memfs.New(), 0)
			if err := w.Save(nil, tt.ents); err == nil {
				t.Fatal("Save succeeded")
			}
			// A refused Save writes nothing and leaves the WAL usable.
			save(t, w, nil, entries(1, 1, 2))
		})
	}
}

func TestSyncFailureIsSticky(t *testing.T) {
	m := memfs.New()
	w := create(t, m, 0)
	save(t, w, hardState(1, 1), entries(1, 1, 3))
	boom := errors.New("boom")
	m.SyncErr = func(string) error { return boom }
	must(t, w.Save(nil, entries(1, 4, 5)))
	if err := w.Sync(); !errors.Is(err, boom) {
		t.Fatalf("Sync = %v, want boom", err)
	}
	m.SyncErr = nil
	// A retried fsync could report pages the kernel already dropped as
	// durable, so the WAL refuses to go on.
	if err := w.Sync(); !errors.Is(err, boom) {
		t.Fatalf("Sync after a failure = %v, want the earlier failure", err)
	}
	if err := w.Save(nil, entries(1, 6, 6)); err == nil {
		t.Fatal("Save after a failure succeeded")
	}
	must(t, w.Close())
	m.Crash(nil)
	_, rec := open(t, m, 0, 0)
	checkEntries(t, rec.Entries, entries(1, 1, 3))
}

func TestLargeBatchSpansSegments(t *testing.T) {
	// Larger than BufferBytesMax, so Save writes while buffering and cuts
	// mid-batch.
	const segBytes = 1 << 20
	m := memfs.New()
	w := create(t, m, segBytes)
	var ents []wal.Entry
	for i := uint64(1); i <= 12; i++ {
		ents = append(ents, wal.Entry{Term: 1, Index: i, Data: make([]byte, 700<<10)})
	}
	save(t, w, hardState(1, 12), ents)
	must(t, w.Close())
	if n := len(segments(t, m)); n < 3 {
		t.Fatalf("%d segments, want the batch cut into several", n)
	}
	_, rec := open(t, m, segBytes, 0)
	checkEntries(t, rec.Entries, ents)
	if rec.HardState != *hardState(1, 12) {
		t.Fatalf("hard state %+v", rec.HardState)
	}
}

func TestDetachAndRemoveSegments(t *testing.T) {
	const segBytes = 512
	m := memfs.New()
	w := create(t, m, segBytes)
	// The only hard state record is in the first segment: after releasing
	// it, the copies at each segment start must still carry it.
	hs := hardState(7, 3)
	save(t, w, hs, entries(7, 1, 5))
	for lo := uint64(6); lo <= 100; lo += 5 {
		save(t, w, nil, entries(7, lo, lo+4))
	}
	before := w.SegmentNames()
	if len(before) < 5 {
		t.Fatalf("only %d segments", len(before))
	}

	const release = 50
	detached, err := w.DetachTo(release)
	must(t, err)
	if got := segments(t, m); len(got) != len(before) {
		t.Fatalf("detaching removed files: the directory holds %q, before %q", got, before)
	}
	must(t, wal.RemoveSegments(m, detached))
	after := w.SegmentNames()
	if got := segments(t, m); len(got) != len(after) {
		t.Fatalf("directory holds %q, WAL thinks %q", got, after)
	}
	removed := before[:len(before)-len(after)]
	if len(removed) == 0 {
		t.Fatal("nothing released")
	}
	for i, name := range before[:len(before)-1] {
		_, nextFirst, _ := wal.ParseSegmentName(before[i+1])
		wantRemoved := nextFirst <= release
		if isRemoved := i < len(removed); isRemoved != wantRemoved {
			t.Errorf("%s (next first %d): removed %v, want %v", name, nextFirst, isRemoved, wantRemoved)
		}
	}

	// Releasing everything keeps the segment being written.
	detached, err = w.DetachTo(1 << 40)
	must(t, err)
	must(t, wal.RemoveSegments(m, detached))
	if got := segments(t, m); len(got) != 1 || got[0] != before[len(before)-1] {
		t.Fatalf("after releasing everything: %q", got)
	}
	save(t, w, nil, entries(7, 101, 102))
	must(t, w.Close())
	m.Crash(nil)

	_, rec := open(t, m, segBytes, 100)
	checkEntries(t, rec.Entries, entries(7, 101, 102))
	if rec.HardState != *hs {
		t.Fatalf("hard state %+v, want %+v", rec.HardState, *hs)
	}
	// An index the released segments were needed for is a gap.
	_, _, err = wal.Open(m, opts(segBytes), 10)
	checkCorrupt(t, err, before[len(before)-1], -1)
}

func TestOptions(t *testing.T) {
	tests := []wal.Options{
		{Dir: ""},
		{Dir: dir, SegmentBytes: -1},
		{Dir: dir, SegmentBytes: wal.SegmentBytesMax + 1},
	}
	for _, o := range tests {
		if _, err := wal.Create(memfs.New(), o, nil); err == nil {
			t.Errorf("Create(%+v) succeeded", o)
		}
	}
	if _, err := wal.Create(memfs.New(), opts(0), make([]byte, wal.MetaBytesMax+1)); err == nil {
		t.Error("Create with oversized meta succeeded")
	}
}

// TestFlushWritesWithoutSync: Flush puts the buffered records in the file,
// where a crash loses them (or tears them); only Sync makes them durable.
func TestFlushWritesWithoutSync(t *testing.T) {
	m := memfs.New()
	w := create(t, m, 1<<20)
	save(t, w, hardState(1, 4), entries(1, 1, 4))
	before := w.WrittenBytes()
	must(t, w.Save(hardState(1, 8), entries(1, 5, 8)))
	must(t, w.Flush())
	if w.WrittenBytes() <= before {
		t.Fatalf("Flush wrote nothing: %d bytes before, %d after", before, w.WrittenBytes())
	}
	var unsynced int
	m.Crash(func(_ string, n int) int { unsynced = n; return 0 })
	if unsynced == 0 {
		t.Fatal("the crash found no unsynced bytes: Flush did not write to the file")
	}
	_, rec := open(t, m, 1<<20, 0)
	checkEntries(t, rec.Entries, entries(1, 1, 4))
}
