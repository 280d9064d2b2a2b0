package sim

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strings"

	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/disk"
	"github.com/detcd/detcd/netsim"
)

// faultState injects faults on a schedule drawn from its own PRNG and
// undoes each one after a while.
type faultState struct {
	w     *World
	rng   *rand.Rand
	kinds []Faults
	// changing is set while a membership change is in progress.
	changing bool
}

func (f *faultState) init(w *World) {
	f.w, f.rng = w, w.child()
	for k := Faults(1); k < faultsEnd; k <<= 1 {
		if w.opts.Faults.Has(k) && k != FaultTorn && (!k.needsQuorumToSpare() || w.opts.Members >= votersMin) {
			f.kinds = append(f.kinds, k)
		}
	}
	if w.opts.Faults.Has(FaultClock) {
		for _, m := range w.members {
			m.clock.driftPPM = f.between(-20_000, 20_000)
			m.clock.offset = f.between(-10_000_000, 10_000_000)
		}
	}
}

func (f *faultState) between(lo, hi int64) int64 { return lo + f.rng.Int64N(hi-lo+1) }

func (f *faultState) start() {
	if f.w.opts.Schedule != nil {
		for _, sf := range f.w.opts.Schedule {
			sf := sf
			f.w.schedule(sf.AtUs, func() {
				if !f.w.stopping {
					f.inject(sf.Kind, f.w.members[sf.Member%len(f.w.members)], sf.ForUs)
				}
			})
		}
		return
	}
	if len(f.kinds) == 0 {
		return
	}
	f.scheduleNext()
}

func (f *faultState) scheduleNext() {
	mean := f.w.settings.FaultEveryUs
	f.w.after(f.between(mean/2, mean*3/2), func() {
		if f.w.stopping {
			return
		}
		f.inject(f.pickKind(), f.member(), f.between(500_000, 5_000_000))
		f.scheduleNext()
	})
}

func (f *faultState) member() *member {
	live := f.w.live()
	return live[f.rng.IntN(len(live))]
}

// leader is the member most members think leads, if any.
func (f *faultState) leader() *member {
	for _, m := range f.w.members {
		if m.up && m.node.Leader() == m.id {
			return m
		}
	}
	return nil
}

// inject starts a fault of kind k, on member m where it concerns one, for
// heal microseconds where it lasts.
func (f *faultState) inject(k Faults, m *member, heal int64) {
	w := f.w
	w.noteFault(k, m, heal)
	w.checks.faultInjected(k, m, heal)
	name := k.String()
	w.stats.Faults[name]++
	switch k {
	case FaultPartition:
		var desc string
		if l := f.leader(); l != nil && f.rng.IntN(2) == 0 {
			w.net.Isolate(l.id)
			desc = "isolate leader " + l.name
		} else {
			var a, b []netsim.NodeID
			for _, m := range w.members {
				if f.rng.IntN(2) == 0 {
					a = append(a, m.id)
				} else {
					b = append(b, m.id)
				}
			}
			w.net.Partition(a, b)
			desc = fmt.Sprintf("partition %v | %v", a, b)
		}
		w.trace.logf(w.now, "fault %s: %s", desc, w.net)
		w.after(heal, f.healNet)
	case FaultOneWay:
		a, b := m, f.member()
		if a != b {
			w.net.CutOneWay(a.id, b.id)
			w.trace.logf(w.now, "fault one-way cut %s>%s", a.name, b.name)
			w.after(heal, f.healNet)
		}
	case FaultNetwork:
		a, b := m, f.member()
		c := w.settings.Net
		c.LossPerMille, c.DupPerMille, c.ReorderPerMille, c.ReorderUs = int(f.between(100, 500)), int(f.between(0, 100)), 300, 50_000
		if err := w.net.SetLink(a.id, b.id, c); err == nil {
			w.trace.logf(w.now, "fault lossy link %s>%s", a.name, b.name)
			w.after(heal, f.healNet)
		}
	case FaultCrash:
		if m.up && !m.removed {
			m.crash(w.opts.Faults.Has(FaultTorn))
			w.after(heal, func() { w.restart(m) })
		}
	case FaultPowerLoss:
		w.trace.logf(w.now, "fault power loss")
		for _, m := range w.members {
			m.crash(w.opts.Faults.Has(FaultTorn))
		}
		w.after(heal, func() {
			for _, m := range w.members {
				if !m.removed {
					w.restart(m)
				}
			}
		})
	case FaultFsync:
		m.failSync = true
		w.trace.logf(w.now, "fault next fsync fails on %s", m.name)
	case FaultSlowDisk:
		m.slow = f.between(5, 50)
		w.trace.logf(w.now, "fault slow disk on %s x%d", m.name, m.slow)
		w.after(heal, func() { m.slow = 1 })
	case FaultClock:
		d := f.between(-clockJumpMaxUs, clockJumpMaxUs)
		m.clock.jump(d)
		if d < 0 {
			w.checks.tickStalls = append(w.checks.tickStalls, [2]int64{w.now, w.now - d})
		}
		w.trace.logf(w.now, "fault clock jump on %s by %dus", m.name, d)
	case FaultMembership:
		f.membershipChange()
	case FaultPause:
		if m.up && !m.paused {
			m.pause()
			w.checks.tickStalls = append(w.checks.tickStalls, [2]int64{w.now, w.now + min(heal, 3_000_000)})
			w.after(min(heal, 3_000_000), m.resume)
		}
	case FaultWALWipe, FaultRot, FaultGarbage:
		f.destroy(k, m, heal)
	}
}

// clockJumpMaxUs bounds a clock fault's jump, either way.
const clockJumpMaxUs = 30_000_000

// needsQuorumToSpare says a kind takes a member away for good or changes
// the membership, so it runs only in clusters of at least votersMin.
func (k Faults) needsQuorumToSpare() bool {
	return k == FaultMembership || k == FaultWALWipe || k == FaultRot || k == FaultGarbage
}

// refusal is the error a start must fail with after a kind of damage.
func (k Faults) refusal() error {
	if k == FaultWALWipe {
		return disk.ErrLogMissing
	}
	return wal.ErrCorrupt
}

// destroy stops m and damages its data as kind k does, then restarts it
// after heal, when it must (for garbage, may) refuse, if canBreak allows.
func (f *faultState) destroy(k Faults, m *member, heal int64) {
	w := f.w
	if !f.canBreak(m) {
		return
	}
	if k == FaultGarbage {
		if m.up {
			m.garbageArmed = heal
			w.trace.logf(w.now, "fault %s armed on %s: it crashes at its next log write, before the fsync", k, m.name)
		}
		return
	}
	m.crash(false)
	w.after(heal, func() { w.restart(m) })
	var desc string
	switch k {
	case FaultWALWipe:
		if err := m.fs.RemoveAll(wipeDir); err != nil {
			w.checks.fail("%s: wipe the WAL: %v", m.name, err)
			return
		}
		desc = "operator deleted " + wipeDir
	case FaultRot:
		var ok bool
		if desc, ok = f.rot(m); !ok {
			return
		}
	}
	m.broken = k
	w.trace.logf(w.now, "fault %s on %s: %s", k, m.name, desc)
}

// garbageSpan is garbage a crash left in bytes [off, end) of file, whose
// unsynced bytes started at from.
type garbageSpan struct {
	file           string
	from, off, end int64
}

func (g garbageSpan) String() string {
	return fmt.Sprintf("%s bytes %d-%d (unsynced from %d)", g.file, g.off, g.end, g.from)
}

// canBreak says whether a fault may damage m's data now: only while
// enough voters remain, and only a minority of them (one of 3, two of 5)
// is ever broken, so the cluster keeps a quorum.
func (f *faultState) canBreak(m *member) bool {
	w := f.w
	if m.removed || m.broken != 0 || w.voters() < votersMin {
		return false
	}
	broken := 1 // m
	for _, o := range w.live() {
		if o.broken != 0 {
			broken++
		}
	}
	return broken <= (w.voters()-1)/2
}

// garbageCrash crashes m between a log write and its fsync, on a disk that
// does not write sectors atomically: the write is torn somewhere in the
// bytes it wrote, and the unsynced bytes of the sector it was writing
// read as garbage. The WAL cannot tell that from rot in its last synced
// record (core/wal/doc.go), so m may refuse to start, but only for damage
// where its unsynced bytes began or later.
func (f *faultState) garbageCrash(m *member) {
	w := f.w
	heal := m.garbageArmed
	m.garbageArmed = 0
	if w.stopping || !f.canBreak(m) {
		return
	}
	tear := m.tornWrites(f.rng)
	m.garbage = nil
	m.fs.TornGarbage = func(name string, from, off, n int) []byte {
		if !strings.HasPrefix(name, walDir+"/") || !strings.HasSuffix(name, ".wal") {
			return nil
		}
		g := make([]byte, n)
		for i := range g {
			g[i] = byte(f.rng.Uint32())
		}
		m.garbage = append(m.garbage, garbageSpan{file: name, from: int64(from), off: int64(off), end: int64(off + n)})
		return g
	}
	m.crashWith(tear)
	m.fs.TornGarbage = nil
	w.after(heal, func() { w.restart(m) })
	if len(m.garbage) > 0 {
		m.broken = FaultGarbage
		w.trace.logf(w.now, "fault %s on %s: %v", FaultGarbage, m.name, m.garbage)
	}
}

// damageExplains says whether the damage a fault did to m's data accounts
// for err, its refusal to start: after garbage, only corruption in a file
// with garbage, at or past where its unsynced bytes began and before the
// garbage ended.
func (m *member) damageExplains(err error) bool {
	if m.broken != FaultGarbage {
		return true
	}
	var ce *wal.CorruptError
	if !errors.As(err, &ce) {
		return false
	}
	for _, g := range m.garbage {
		if ce.File == g.file && ce.Offset >= g.from && ce.Offset < g.end {
			return true
		}
	}
	return false
}

// walDir is where the simulated members' logs live.
const walDir = "data/member/wal"

// wipeDir is what FaultWALWipe deletes. Tests widen it to the whole member
// directory, which leaves no sign of the member, to prove that the
// checkers catch a member that starts afresh and serves less than it
// acknowledged.
var wipeDir = walDir

// snapDir is where the simulated members' checkpoints live.
const snapDir = "data/member/snap"

// rot flips one bit of the synced data a restart reads: the latest
// checkpoint, or any log segment from the one the checkpoint's index
// falls in on, the last segment included.
func (f *faultState) rot(m *member) (string, bool) {
	files := rotTargets(m)
	if len(files) == 0 {
		return "", false
	}
	i := f.rng.IntN(len(files))
	file := files[i]
	b, err := m.fs.ReadFile(file)
	if err != nil {
		return "", false
	}
	written := len(bytes.TrimRight(b, "\x00"))
	if written == 0 {
		return "", false
	}
	off, bit := f.rng.Int64N(int64(written)), uint(f.rng.IntN(8))
	if err := m.fs.FlipBit(file, off, bit); err != nil {
		f.w.checks.fail("%s: rot: %v", m.name, err)
		return "", false
	}
	return fmt.Sprintf("bit %d of byte %d of %s (%d bytes written; file %d of the %d a restart reads)", bit, off, file, written, i+1, len(files)), true
}

// rotTargets are the files a restart of m reads, as wal.Open and
// disk.Open choose them: the latest checkpoint and the segments from the
// last one whose first index is at most the checkpoint's index + 1.
func rotTargets(m *member) []string {
	var files []string
	var after uint64
	if idxs, err := wal.ListCheckpoints(m.fs, snapDir); err == nil && len(idxs) > 0 {
		after = idxs[len(idxs)-1]
		files = append(files, fmt.Sprintf("%s/%016x.ckpt", snapDir, after))
	}
	names, err := m.fs.List(walDir)
	if err != nil {
		return nil
	}
	var segs []string
	start := 0
	for _, n := range names { // sorted by sequence number
		var seq, first uint64
		if _, err := fmt.Sscanf(n, "%016x-%016x.wal", &seq, &first); err != nil || !strings.HasSuffix(n, ".wal") {
			continue
		}
		if len(segs) > 0 && (first == 0 || first-1 <= after) {
			start = len(segs)
		}
		segs = append(segs, walDir+"/"+n)
	}
	return append(files, segs[start:]...)
}

// healNet heals the network, but for the members the liveness phase
// keeps cut off.
func (f *faultState) healNet() {
	f.w.net.Heal()
	f.isolateKept()
	f.w.trace.logf(f.w.now, "heal network")
}

func (f *faultState) isolateKept() {
	for _, m := range f.w.members {
		if m.kept && m.up {
			f.w.net.Isolate(m.id)
		}
	}
}

// keepMinority, in runs that keep a faulty minority, picks up to a
// minority of the voters (counting those whose data a fault destroyed)
// for the liveness phase to leave crashed or cut off.
func (f *faultState) keepMinority() {
	w := f.w
	if !w.opts.keepsFaulty() {
		return
	}
	var voters, healthy []*member
	for _, m := range w.live() {
		if m.learner {
			continue
		}
		voters = append(voters, m)
		if m.broken == 0 {
			healthy = append(healthy, m)
		}
	}
	budget := (len(voters)-1)/2 - (len(voters) - len(healthy))
	if budget <= 0 {
		return
	}
	f.rng.Shuffle(len(healthy), func(i, j int) { healthy[i], healthy[j] = healthy[j], healthy[i] })
	for _, m := range healthy[:1+f.rng.IntN(budget)] {
		m.kept = true
		switch {
		case !m.up:
			w.trace.logf(w.now, "liveness phase keeps %s down", m.name)
		case f.rng.IntN(2) == 0:
			w.trace.logf(w.now, "liveness phase crashes %s and keeps it down", m.name)
			m.crash(w.opts.Faults.Has(FaultTorn))
		default:
			w.trace.logf(w.now, "liveness phase keeps %s cut off", m.name)
		}
	}
}

// healAll ends every fault for the liveness phase, but keeps the members
// keepMinority picked crashed or cut off.
func (f *faultState) healAll() {
	w := f.w
	w.net.Heal()
	f.isolateKept()
	for _, m := range w.members {
		m.slow, m.failSync = 1, false
		if m.paused {
			m.resume()
		}
		if !m.up && !m.removed {
			w.restart(m)
		}
	}
}

// pickKind draws a fault kind by the run's fault weights.
func (f *faultState) pickKind() Faults {
	total := 0
	for _, k := range f.kinds {
		total += f.w.settings.FaultWeights[bits.TrailingZeros32(uint32(k))]
	}
	r := f.rng.IntN(total)
	for _, k := range f.kinds {
		if r -= f.w.settings.FaultWeights[bits.TrailingZeros32(uint32(k))]; r < 0 {
			return k
		}
	}
	return f.kinds[0]
}
