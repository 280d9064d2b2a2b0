package diskfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/diskfs"
)

// mapKeysMax is how many distinct keys the mapping tests write.
const mapKeysMax = 300

// randomStore writes a history of puts, deletes and a compaction, with
// values large enough that the checkpoint spans several chunks.
func randomStore(rng *rand.Rand) *mvcc.Store {
	s := mvcc.New()
	for i := 0; i < 3000; i++ {
		t := s.Write()
		k := []byte(fmt.Sprintf("k%04d", rng.IntN(mapKeysMax)))
		if rng.IntN(8) == 0 {
			t.DeleteRange(k, nil)
		} else {
			t.Put(k, bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, rng.IntN(4<<10)), mvcc.LeaseID(rng.IntN(3)))
		}
		t.End()
		if i == 1500 {
			if err := s.Compact(1000, nil); err != nil {
				panic(err)
			}
			for s.Step(1 << 20) {
			}
		}
	}
	return s
}

// rangesOf answers a fixed, seeded set of ranges at every kind of
// revision (compacted, old, current, ahead) from read.
func rangesOf(t *testing.T, read func(key, end []byte, ro mvcc.RangeOptions) (*mvcc.RangeResult, error), rng *rand.Rand, rev mvcc.Revision) []string {
	t.Helper()
	var out []string
	for i := 0; i < 400; i++ {
		lo := fmt.Sprintf("k%04d", rng.IntN(mapKeysMax))
		hi := fmt.Sprintf("k%04d", rng.IntN(mapKeysMax))
		if hi < lo {
			lo, hi = hi, lo
		}
		at := mvcc.Revision(rng.Int64N(int64(rev) + 1))
		if rng.IntN(20) == 0 {
			at = rev + 1 + mvcc.Revision(rng.IntN(3)) // ahead of the store
		}
		ro := mvcc.RangeOptions{Rev: at, Limit: int64(rng.IntN(3) * 20), KeysOnly: rng.IntN(4) == 0}
		res, err := read([]byte(lo), []byte(hi), ro)
		out = append(out, fmt.Sprintf("%s..%s %+v: %v", lo, hi, ro, describe(res, err)))
	}
	return out
}

// TestMapCheckpoint: a store loaded from a checkpoint mapped from the file
// (what a restart does) answers every read as one loaded from the same
// checkpoint read into memory, and goes on doing so, and so does a view
// taken before, after the file is removed and a newer checkpoint written
// in its place (what a later checkpoint's release does) and the store is
// replaced by one loaded from that (what a snapshot install does).
func TestMapCheckpoint(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			dir := t.TempDir()
			fsys := diskfs.New(dir)
			src := randomStore(rand.New(rand.NewPCG(seed, 0)))
			must(t, wal.WriteCheckpoint(fsys, "snap", 7, func(w io.Writer) error {
				_, err := src.Snapshot().WriteTo(w)
				return err
			}))
			mapped, err := wal.MapCheckpoint(fsys, "snap", 7)
			must(t, err)
			read, err := wal.ReadCheckpoint(fsys, "snap", 7)
			must(t, err)
			if runtime.GOOS == "linux" && !fileMapped(t, filepath.Join(dir, "snap", fmt.Sprintf("%016x.ckpt", 7))) {
				t.Fatal("MapCheckpoint did not map the file")
			}
			fromMap, _, err := mvcc.Load(mapped)
			must(t, err)
			fromRead, _, err := mvcc.Load(read)
			must(t, err)
			view := fromMap.Snapshot()
			rev := src.Rev()
			want := rangesOf(t, fromRead.Range, rand.New(rand.NewPCG(seed, 1)), rev)
			if kinds := answerKinds(want); kinds["kvs"] < 100 || kinds["compacted"] == 0 || kinds["future"] == 0 {
				t.Fatalf("the reads tell too little: %v", kinds)
			}
			if got := rangesOf(t, fromMap.Range, rand.New(rand.NewPCG(seed, 1)), rev); !reflect.DeepEqual(got, want) {
				t.Fatalf("mapped store reads differ:\n%s", diffFirst(got, want))
			}

			// A later checkpoint replaces the file: the old one is
			// removed while still mapped, and a new one is written.
			must(t, wal.RemoveCheckpoint(fsys, "snap", 7))
			tx := fromMap.Write()
			tx.Put([]byte("k0000"), []byte("after"), 0)
			tx.End()
			must(t, wal.WriteCheckpoint(fsys, "snap", 9, func(w io.Writer) error {
				_, err := fromMap.Snapshot().WriteTo(w)
				return err
			}))
			// A snapshot install then replaces the store with one read
			// from the new checkpoint, and the mapped one is dropped.
			installed, err := wal.ReadCheckpoint(fsys, "snap", 9)
			must(t, err)
			replacement, _, err := mvcc.Load(installed)
			must(t, err)
			fromMap = nil
			runtime.GC()
			runtime.GC()
			if got := rangesOf(t, view.Range, rand.New(rand.NewPCG(seed, 1)), rev); !reflect.DeepEqual(got, want) {
				t.Fatalf("a view of the mapped store reads otherwise once its file is gone and the store replaced:\n%s", diffFirst(got, want))
			}
			if got, err := replacement.Range([]byte("k0000"), nil, mvcc.RangeOptions{}); err != nil || len(got.KVs) != 1 || string(got.KVs[0].Value) != "after" {
				t.Fatalf("the installed store reads k0000 as %v %v", got, err)
			}
			h1, err := view.HashKV(0)
			must(t, err)
			h2, err := fromRead.Snapshot().HashKV(0)
			must(t, err)
			if h1 != h2 {
				t.Fatalf("HashKV of the mapped view %+v, of the read store %+v", h1, h2)
			}
		})
	}
}

func diffFirst(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("got  %s\nwant %s", got[i], want[i])
		}
	}
	return fmt.Sprintf("%d answers, want %d", len(got), len(want))
}

// fileMapped reports whether the process maps name.
func fileMapped(t *testing.T, name string) bool {
	b, err := os.ReadFile("/proc/self/maps")
	must(t, err)
	return strings.Contains(string(b), name)
}

// TestMapCheckpointDamaged: a damaged checkpoint, mapped, fails its
// checksum with an error naming the file and where, as read; so does one
// cut short.
func TestMapCheckpointDamaged(t *testing.T) {
	dir := t.TempDir()
	fsys := diskfs.New(dir)
	content := bytes.Repeat([]byte("checkpoint "), 300_000)
	must(t, wal.WriteCheckpoint(fsys, "snap", 5, func(w io.Writer) error {
		_, err := w.Write(content)
		return err
	}))
	name := filepath.Join(dir, "snap", fmt.Sprintf("%016x.ckpt", 5))
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	must(t, err)
	_, err = f.WriteAt([]byte("X"), 2<<20+100)
	must(t, err)
	must(t, f.Close())
	_, err = wal.MapCheckpoint(fsys, "snap", 5)
	if !errors.Is(err, wal.ErrCorrupt) || !strings.Contains(err.Error(), "0000000000000005.ckpt") || !strings.Contains(err.Error(), "chunk 2") {
		t.Fatalf("damaged checkpoint mapped: %v, want corruption of chunk 2 naming the file", err)
	}
	must(t, os.Truncate(name, 1<<20))
	_, err = wal.MapCheckpoint(fsys, "snap", 5)
	if !errors.Is(err, wal.ErrCorrupt) || !strings.Contains(err.Error(), "0000000000000005.ckpt") {
		t.Fatalf("checkpoint cut short mapped: %v, want corruption naming the file", err)
	}
}

// describe prints a range's answer by value: its key-values, count and
// revision, or its error.
func describe(res *mvcc.RangeResult, err error) string {
	if err != nil {
		return "error " + err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "count %d rev %d:", res.Count, res.Rev)
	for _, kv := range res.KVs {
		fmt.Fprintf(&b, " %s", kv.String())
	}
	return b.String()
}

// answerKinds counts the answers that found key-values and those that
// failed as compacted or ahead of the store, to check the reads compared
// cover each.
func answerKinds(answers []string) map[string]int {
	kinds := map[string]int{}
	for _, a := range answers {
		switch {
		case strings.Contains(a, "compacted"):
			kinds["compacted"]++
		case strings.Contains(a, "future"):
			kinds["future"]++
		case strings.Contains(a, "key:"):
			kinds["kvs"]++
		}
	}
	return kinds
}
