package sim

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/detcd/detcd/core/wal"
)

// runTraced runs a world built from o, after prepare adjusts it, and
// returns the result and the trace.
func runTraced(t *testing.T, o Options, prepare func(*World)) (*Result, string) {
	t.Helper()
	var trace bytes.Buffer
	w, err := New(o, &trace)
	if err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(w)
	}
	return w.Run(), trace.String()
}

// TestRotAnywhere: bit rot in any synced file a restart reads (the latest
// checkpoint, a segment before the last, the last one) makes the member
// refuse to start, and the cluster goes on. Small segments and frequent
// checkpoints give each kind of file a chance.
func TestRotAnywhere(t *testing.T) {
	hit := map[string]int{}
	for seed := uint64(1); seed <= 6; seed++ {
		o := DefaultOptions()
		o.Seed, o.Members, o.Duration, o.Faults = seed, 5, 20*time.Second, FaultCrash|FaultNetwork|FaultRot
		for i := 0; i < 4; i++ {
			o.Schedule = append(o.Schedule, ScheduledFault{AtUs: int64(8_000_000 + 3_000_000*i), Kind: FaultRot, Member: i, ForUs: 1_000_000})
		}
		res, trace := runTraced(t, o, func(w *World) {
			w.settings.SnapshotCount, w.settings.CheckpointMinBytes = 50, 1
			for _, m := range w.members {
				m.segmentBytes = 4 << 10
			}
		})
		if !res.OK() {
			t.Errorf("seed %d: %s\n  replay: detcd-sim run %s --trace trace.txt (with small segments)", seed, strings.Join(res.Failures, "; "), o)
		}
		for _, l := range strings.Split(trace, "\n") {
			_, desc, ok := strings.Cut(l, "fault rot on ")
			if !ok {
				continue
			}
			var i, n int
			_, after, _ := strings.Cut(desc, "; file ")
			fmt.Sscanf(after, "%d of the %d", &i, &n)
			switch {
			case strings.Contains(desc, ".ckpt"):
				hit["checkpoint"]++
			case i < n:
				hit["earlier segment"]++
			default:
				hit["last segment"]++
			}
		}
		if res.Stats.Refused == 0 {
			t.Errorf("seed %d: no member refused to start after rot", seed)
		}
	}
	for _, k := range []string{"checkpoint", "earlier segment"} {
		if hit[k] == 0 {
			t.Errorf("no rot hit a %s (hits: %v)", k, hit)
		}
	}
	t.Logf("rot hits: %v", hit)
}

// TestKeepFaultyMinority: a liveness phase that leaves a minority of the
// voters crashed or cut off still converges, and the rest serves a write
// and a linearizable read.
func TestKeepFaultyMinority(t *testing.T) {
	kept := 0
	for seed := uint64(1); seed <= 8; seed++ {
		o := short(seed)
		o.KeepFaulty = "on"
		if seed%2 == 0 {
			o.Members = 5
		}
		res, trace := runTraced(t, o, nil)
		if !res.OK() {
			t.Errorf("seed %d: %s\n  replay: detcd-sim run %s --trace trace.txt", seed, strings.Join(res.Failures, "; "), o)
		}
		if strings.Contains(trace, "liveness phase keeps") || strings.Contains(trace, "liveness phase crashes") {
			kept++
			if !strings.Contains(trace, "liveness probe: ") || !strings.Contains(trace, "read it back") {
				t.Errorf("seed %d: a minority was kept, but the probe did not read its write back", seed)
			}
		}
	}
	if kept < 6 {
		t.Errorf("only %d of 8 runs kept a faulty minority", kept)
	}
}

// TestKeepFaultyFromSeed: left empty, the option keeps a faulty minority
// for about a quarter of the seeds.
func TestKeepFaultyFromSeed(t *testing.T) {
	n := 0
	for seed := uint64(0); seed < 1000; seed++ {
		if (Options{Seed: seed}).keepsFaulty() {
			n++
		}
	}
	if n < 200 || n > 300 {
		t.Fatalf("%d of 1000 seeds keep a faulty minority, want about 250", n)
	}
	if (Options{Seed: 1, KeepFaulty: "off"}).keepsFaulty() || !(Options{Seed: 1, KeepFaulty: "on"}).keepsFaulty() {
		t.Fatal("on and off do not decide")
	}
}

// TestCrashBetweenWriteAndFsync: a log write reaches the disk (memfs,
// unsynced) at once and its fsync comes at the disk's next turn, two
// events apart. A crash between them loses exactly the unsynced writes:
// the member comes back with its log ending where the last fsync left it,
// never short of it (acknowledged) and never past it (nothing unsynced
// survives a crash without a tear). A torn crash keeps a prefix of the
// bytes written: the log may end anywhere from the synced end to the
// written one.
func TestCrashBetweenWriteAndFsync(t *testing.T) {
	for _, torn := range []bool{false, true} {
		for seed := uint64(1); seed <= 5; seed++ {
			crashBetweenWriteAndFsync(t, seed, torn)
		}
	}
}

func crashBetweenWriteAndFsync(t *testing.T, seed uint64, torn bool) {
	t.Helper()
	o := short(seed)
	o.Faults = 0
	w, err := New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	crashed := 0
	var watch func()
	watch = func() {
		for _, m := range w.members {
			if !m.up || m.d.Written() <= m.d.Durable() || crashed >= 3 {
				continue
			}
			crashed++
			written, durable := m.d.Written(), m.d.Durable()
			m.crash(torn)
			w.after(100_000, func() {
				w.restart(m)
				if last := m.node.LastIndex(); last < durable || last > written || (!torn && last != durable) {
					t.Errorf("seed %d, torn %v: %s crashed with its log written to %d and synced to %d, restarted with it ending at %d", seed, torn, m.name, written, durable, last)
				}
			})
		}
		if w.now < 8_000_000 {
			w.after(1_000, watch)
		}
	}
	w.after(1_000_000, watch)
	res := w.Run()
	if !res.OK() {
		t.Errorf("seed %d: %s", seed, strings.Join(res.Failures, "; "))
	}
	if crashed == 0 {
		t.Errorf("seed %d: never caught a member between a write and its fsync", seed)
	}
}

// TestGarbageTail: a crash between a log write and its fsync on a disk
// that leaves the sector in flight as garbage. The member either starts
// with everything it synced or refuses with corruption in its unsynced
// tail (the WAL cannot tell that garbage from rot), and the cluster goes
// on without it.
func TestGarbageTail(t *testing.T) {
	landed, refused := 0, 0
	// Garbage lands only on a crash between a write and its fsync: a
	// dozen seeds, so that the count does not hang on one world's draws.
	for seed := uint64(1); seed <= 12; seed++ {
		o := short(seed)
		// Few other kinds, so that garbage is drawn often whatever the
		// seed's fault weights.
		o.Members, o.Duration, o.Faults = 3+2*int(seed%2), 20*time.Second, FaultGarbage|FaultCrash|FaultNetwork
		// Auth is beside the point here.
		o.AuthOn = "off"
		res, trace := runTraced(t, o, nil)
		if !res.OK() {
			t.Errorf("seed %d: %s\n  replay: detcd-sim run %s --trace trace.txt", seed, strings.Join(res.Failures, "; "), o)
		}
		landed += strings.Count(trace, "fault garbage on ")
		refused += res.Stats.Refused
	}
	t.Logf("garbage landed %d times, %d refusals", landed, refused)
	if landed < 4 || refused == 0 {
		t.Fatalf("garbage landed %d times, %d refusals: the fault does not bite", landed, refused)
	}
}

// TestGarbageExplainsOnlyItsTail: after garbage, a refusal is accepted
// only for corruption from where the unsynced bytes began up to the end
// of the garbage; corruption in synced data is a failure.
func TestGarbageExplainsOnlyItsTail(t *testing.T) {
	m := &member{broken: FaultGarbage, garbage: []garbageSpan{{file: "f.wal", from: 1000, off: 1024, end: 1100}}}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&wal.CorruptError{File: "f.wal", Offset: 1000}, true},
		{&wal.CorruptError{File: "f.wal", Offset: 1050}, true},
		{&wal.CorruptError{File: "f.wal", Offset: 999}, false},
		{&wal.CorruptError{File: "f.wal", Offset: 1100}, false},
		{&wal.CorruptError{File: "g.wal", Offset: 1050}, false},
		{fmt.Errorf("disk: %w", &wal.CorruptError{File: "f.wal", Offset: 1010}), true},
		{wal.ErrCorrupt, false},
	} {
		if got := m.damageExplains(tt.err); got != tt.want {
			t.Errorf("damageExplains(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
