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

// tornScenario writes synced batches, each with a hard state, then a final
// batch whose Sync fails, so its bytes are in the file but not durable.
type tornScenario struct {
	segBytes int64
	synced   [][]wal.Entry
	final    []wal.Entry
}

var errSyncFail = errors.New("injected sync failure")

var finalHS = wal.HardState{Term: 9, Vote: 2, Commit: 99}

// run plays the scenario on m and returns the segment the final batch went
// to and where in it the batch starts.
func (sc tornScenario) run(t *testing.T, m *memfs.FS) (string, int64) {
	t.Helper()
	w := create(t, m, sc.segBytes)
	for _, b := range sc.synced {
		save(t, w, hardState(1, b[len(b)-1].Index), b)
	}
	names := w.SegmentNames()
	seg, start := names[len(names)-1], w.WrittenBytes()
	m.SyncErr = func(string) error { return errSyncFail }
	must(t, w.Save(&finalHS, sc.final))
	if err := w.Sync(); !errors.Is(err, errSyncFail) {
		t.Fatalf("Sync = %v, want the injected failure", err)
	}
	m.SyncErr = nil
	return seg, start
}

func batches(n int) [][]wal.Entry {
	var out [][]wal.Entry
	for i := range n {
		lo := uint64(i*4 + 1)
		out = append(out, entries(1, lo, lo+3))
	}
	return out
}

// probeEnds returns, for the scenario written into one large segment, the
// offset after each synced batch.
func probeEnds(t *testing.T, synced [][]wal.Entry) []int64 {
	m := memfs.New()
	w := create(t, m, 1<<20)
	var ends []int64
	for _, b := range synced {
		save(t, w, hardState(1, b[len(b)-1].Index), b)
		ends = append(ends, w.WrittenBytes())
	}
	return ends
}

// bigEntries makes entries lo..hi of term whose records span several
// sectors between them, in lengths off multiples of 256 and of the sector.
func bigEntries(term, lo, hi uint64) []wal.Entry {
	out := entries(term, lo, hi)
	for i := range out {
		out[i].Data = append(out[i].Data, strings.Repeat("y", 150+37*i)...)
	}
	return out
}

// sectorKeep is how many of a write's unsynced bytes from start survive a
// crash that keeps keep of unsynced of them, on a disk that writes whole
// sectors (memfs with SectorBytes set).
func sectorKeep(start int64, keep, unsynced int) int64 {
	if keep >= unsynced {
		return int64(keep)
	}
	end := start + int64(keep)
	return max(end-end%wal.SectorBytes-start, 0)
}

// TestTornTail crashes during the final batch's write at every byte, on a
// disk that writes whole sectors: what was written of it survives in whole
// sectors, the rest reads as zeros, and recovery cuts the torn record.
func TestTornTail(t *testing.T) {
	synced := batches(4)
	final := bigEntries(2, 17, 21)
	ends := probeEnds(t, synced)
	finalEnd := func() int64 { // where the final batch ends in one big segment
		m := memfs.New()
		tornScenario{1 << 20, synced, final}.run(t, m)
		b, err := m.ReadFile(path.Join(dir, segments(t, m)[0]))
		must(t, err)
		offs := wal.RecordOffsets(b)
		return offs[len(offs)-1]
	}()
	tests := []struct {
		name     string
		segBytes int64
		// wantSeq is the segment the final batch must land in; pastEnd
		// says the batch must run past the preallocated size.
		wantSeq uint64
		pastEnd bool
	}{
		{"into preallocated zeros", 4096, 0, false},
		{"past the preallocated end", (ends[len(ends)-1] + finalEnd) / 2, 0, true},
		{"first batch of a fresh segment, past its preallocated end", ends[len(ends)-2] + 1, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := tornScenario{tt.segBytes, synced, final}
			m := memfs.New()
			seg, start := sc.run(t, m)
			content := readFile(t, m, seg)
			if seq, _, _ := wal.ParseSegmentName(seg); seq != tt.wantSeq {
				t.Fatalf("final batch went to segment %d, want %d", seq, tt.wantSeq)
			}
			if pastEnd := int64(len(content)) > tt.segBytes; pastEnd != tt.pastEnd {
				t.Fatalf("segment of %d bytes for SegmentBytes %d: past the end %v, want %v", len(content), tt.segBytes, pastEnd, tt.pastEnd)
			}
			var bounds []int64 // record ends within the final batch, relative to start
			for _, off := range wal.RecordOffsets(content) {
				if off > start {
					bounds = append(bounds, off-start)
				}
			}
			if len(bounds) != len(final)+1 {
				t.Fatalf("final batch has %d records, want %d", len(bounds), len(final)+1)
			}
			var model logModel
			for _, b := range synced {
				model.add(b)
			}
			syncedHS := *hardState(1, synced[len(synced)-1][3].Index)

			for keep := 0; keep <= int(bounds[len(bounds)-1])+3; keep++ {
				m := memfs.New()
				m.SectorBytes = wal.SectorBytes
				sc.run(t, m)
				var kept64 int64
				m.Crash(func(name string, n int) int {
					if name != path.Join(dir, seg) {
						t.Fatalf("crash tears %s too", name)
					}
					kept64 = sectorKeep(start, keep, n)
					return keep
				})
				w, rec, err := wal.Open(m, opts(tt.segBytes), 0)
				if err != nil {
					t.Fatalf("keep %d: Open: %v", keep, err)
				}
				kept, cut := 0, int64(0)
				for kept < len(bounds) && bounds[kept] <= kept64 {
					cut = bounds[kept]
					kept++
				}
				want := append([]wal.Entry{}, model.ents...)
				want = append(want, final[:min(kept, len(final))]...)
				checkEntries(t, rec.Entries, want)
				wantHS := syncedHS
				if kept == len(final)+1 {
					wantHS = finalHS
				}
				if rec.HardState != wantHS {
					t.Fatalf("keep %d: hard state %+v, want %+v", keep, rec.HardState, wantHS)
				}
				torn := kept < len(bounds) && kept64 > cut
				if got := rec.TornTail != ""; got != torn {
					t.Fatalf("keep %d: torn tail %q, want torn %v", keep, rec.TornTail, torn)
				}
				// The report counts the torn bytes up to the last non-zero one.
				written := strings.TrimRight(string(content[start+cut:min(start+kept64, int64(len(content)))]), "\x00")
				if torn && rec.TornTail != fmt.Sprintf("file %s: cut %d bytes at offset %d", path.Join(dir, seg), len(written), start+cut) {
					t.Fatalf("keep %d: torn tail report %q", keep, rec.TornTail)
				}

				// The log goes on where recovery left it, and a reopen
				// finds no tail to cut.
				next := want[len(want)-1].Index + 1
				more := entries(3, next, next+1)
				save(t, w, hardState(3, next), more)
				must(t, w.Close())
				_, rec = open(t, m, tt.segBytes, 0)
				checkEntries(t, rec.Entries, append(want, more...))
				if rec.TornTail != "" {
					t.Fatalf("keep %d: second open cut %q", keep, rec.TornTail)
				}
			}
		})
	}
}

// A crash losing all unsynced bytes leaves the preallocated zeros, which are
// the end of the data, not a torn tail.
func TestZeroTailIsNotTorn(t *testing.T) {
	m := memfs.New()
	w := create(t, m, 4096)
	save(t, w, hardState(1, 3), entries(1, 1, 3))
	seg := w.SegmentNames()[0]
	m.Crash(nil)
	if n := len(readFile(t, m, seg)); n != 4096 {
		t.Fatalf("segment size %d, want it preallocated to 4096", n)
	}
	_, rec := open(t, m, 4096, 0)
	if rec.TornTail != "" {
		t.Fatalf("torn tail %q", rec.TornTail)
	}
	checkEntries(t, rec.Entries, entries(1, 1, 3))
}

// A bit flipped in the final record of the last segment, synced and
// complete, is damage, not a torn write: recovery refuses, naming the file
// and the record's offset, and the unsafe repair cuts it with a report.
func TestBitFlipInFinalRecordIsCorrupt(t *testing.T) {
	for _, bigFinal := range []bool{false, true} {
		t.Run(fmt.Sprintf("record across a sector boundary %v", bigFinal), func(t *testing.T) {
			m := memfs.New()
			w := create(t, m, 4096)
			save(t, w, hardState(1, 3), entries(1, 1, 3))
			final := entries(1, 4, 5)
			if bigFinal {
				final = bigEntries(1, 4, 5)
			}
			save(t, w, nil, final)
			must(t, w.Close())
			seg := segments(t, m)[0]
			offs := wal.RecordOffsets(readFile(t, m, seg))
			rec, end := offs[len(offs)-2], offs[len(offs)-1]
			if bigFinal && rec/wal.SectorBytes == (end-1)/wal.SectorBytes {
				t.Fatalf("final record [%d, %d) does not cross a sector boundary", rec, end)
			}
			must(t, m.FlipBit(path.Join(dir, seg), rec+recordBodyOffset+2, 1))
			_, _, err := wal.Open(m, opts(4096), 0)
			checkCorrupt(t, err, seg, rec)

			ropts := opts(4096)
			ropts.UnsafeRepair = true
			w, got, err := wal.Open(m, ropts, 0)
			must(t, err)
			r := got.Repaired
			if r == nil || r.File != path.Join(dir, seg) || r.Offset != rec || r.DroppedBytes != end-rec || r.Reason == "" {
				t.Fatalf("repair report %+v, want a cut of %d bytes at %d in %s", r, end-rec, rec, seg)
			}
			want := append(entries(1, 1, 3), final[:len(final)-1]...)
			checkEntries(t, got.Entries, want)
			// The repaired log goes on and reopens clean.
			save(t, w, hardState(2, 5), entries(2, 5, 6))
			must(t, w.Close())
			_, got = open(t, m, 4096, 0)
			checkEntries(t, got.Entries, append(want, entries(2, 5, 6)...))
			if got.Repaired != nil || got.TornTail != "" {
				t.Fatalf("second open cut %+v %q", got.Repaired, got.TornTail)
			}
		})
	}
}

// The unsafe repair cuts only what leaves a valid segment: damage in the
// last segment's header or its hard state copy is still refused.
func TestUnsafeRepairKeepsSegmentStart(t *testing.T) {
	for rec := 0; rec < 2; rec++ {
		m, segs := corruptFixture(t)
		last := segs[len(segs)-1]
		off := offsets(t, m, last)[rec]
		must(t, m.FlipBit(path.Join(dir, last), off+recordBodyOffset+2, 0))
		ropts := opts(1024)
		ropts.UnsafeRepair = true
		_, _, err := wal.Open(m, ropts, 0)
		checkCorrupt(t, err, last, off)
	}
}

// recordBodyOffset is where a record's type byte is, after its header.
const recordBodyOffset = 12

// A failure at any sync of a segment cut, then a crash keeping all or none
// of what was not synced, recovers the synced log and can go on.
func TestCrashDuringCut(t *testing.T) {
	const segBytes = 512
	// The cut syncs the old segment, the new one and the directory; after
	// it nothing is left for Sync's own fsync to do.
	for failAt := 1; failAt <= 3; failAt++ {
		for _, keepAll := range []bool{false, true} {
			t.Run(fmt.Sprintf("fail sync %d keep all %v", failAt, keepAll), func(t *testing.T) {
				m := memfs.New()
				w := create(t, m, segBytes)
				var model logModel
				next := uint64(1)
				// Fill the first segment to just under a cut.
				for w.WrittenBytes()+200 < segBytes {
					ents := entries(1, next, next+1)
					save(t, w, hardState(1, next), ents)
					model.add(ents)
					next += 2
				}
				synced := append([]wal.Entry{}, model.ents...)
				calls := 0
				m.SyncErr = func(string) error {
					if calls++; calls == failAt {
						return errSyncFail
					}
					return nil
				}
				final := entries(2, next, next+6)
				must(t, w.Save(hardState(2, next), final))
				if err := w.Sync(); !errors.Is(err, errSyncFail) {
					t.Fatalf("Sync = %v, want the injected failure (after %d sync calls)", err, calls)
				}
				m.SyncErr = nil
				m.Crash(func(string, int) int {
					if keepAll {
						return 1 << 30
					}
					return 0
				})
				w, rec := open(t, m, segBytes, 0)
				got := rec.Entries
				if len(got) < len(synced) {
					t.Fatalf("lost synced entries: recovered %s, synced %s", span(got), span(synced))
				}
				checkEntries(t, got, append(synced, final...)[:len(got)])
				more := entries(3, got[len(got)-1].Index+1, got[len(got)-1].Index+40)
				save(t, w, hardState(3, 1), more)
				must(t, w.Close())
				_, rec = open(t, m, segBytes, 0)
				checkEntries(t, rec.Entries, append(got, more...))
			})
		}
	}
}

// TestTornGarbageTail crashes during the final batch's write at every
// byte on a disk that may leave garbage in the unsynced bytes of the
// sector it was writing. Recovery never loses a synced entry: it opens
// when the write was kept whole (or the garbage sector is followed by an
// unwritten one inside the torn record), and otherwise refuses with
// ErrCorrupt at an offset in the unsynced tail, since garbage there looks
// like rot in the last synced record (see the package doc). UnsafeRepair
// then cuts it and keeps every synced entry.
func TestTornGarbageTail(t *testing.T) {
	synced := batches(4)
	final := bigEntries(2, 17, 21)
	sc := tornScenario{4096, synced, final}
	var model logModel
	for _, b := range synced {
		model.add(b)
	}
	outcomes := map[string]int{}
	for keep := 0; keep <= 2000; keep += 3 {
		m := memfs.New()
		m.SectorBytes = wal.SectorBytes
		seg, start := sc.run(t, m)
		m.TornGarbage = func(_ string, _, _, n int) []byte {
			g := make([]byte, n)
			for i := range g {
				g[i] = byte(0xa5 ^ i*7)
			}
			return g
		}
		m.Crash(func(string, int) int { return keep })
		_, rec, err := wal.Open(m, opts(sc.segBytes), 0)
		if err != nil {
			var ce *wal.CorruptError
			if !errors.As(err, &ce) || ce.File != path.Join(dir, seg) || ce.Offset < start {
				t.Fatalf("keep %d: Open = %v, want success or corruption past the synced end %d", keep, err, start)
			}
			outcomes["refused"]++
			repaired := opts(sc.segBytes)
			repaired.UnsafeRepair = true
			if _, rec, err = wal.Open(m, repaired, 0); err != nil {
				t.Fatalf("keep %d: Open with UnsafeRepair: %v", keep, err)
			}
		} else {
			outcomes["opened"]++
		}
		if got := rec.Entries[:min(len(rec.Entries), len(model.ents))]; len(got) < len(model.ents) {
			t.Fatalf("keep %d: recovered %s, lost synced entries of %s", keep, span(rec.Entries), span(model.ents))
		}
		checkEntries(t, rec.Entries[:len(model.ents)], model.ents)
	}
	if outcomes["refused"] == 0 || outcomes["opened"] == 0 {
		t.Fatalf("outcomes %v: want both refusals and opens", outcomes)
	}
	t.Logf("outcomes over every tear: %v", outcomes)
}
