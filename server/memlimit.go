package server

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// Memory: the key space lives in the Go heap, mostly in large
// pointer-free slabs that are cheap for the collector to scan but that
// GOGC=100 would let the heap double beyond. The server therefore sets
// GOGC itself, so that the heap may grow by a headroom above the live
// heap before the next collection. The headroom is as small as the
// collector's CPU allows: a collection costs about the same whatever the
// headroom (it marks the live heap), and the headroom decides how often
// one runs, so the headroom follows the collector's measured share of the
// process's CPU towards memGCCPUTargetPercent. It stays between
// memHeadroomMinBytes and the larger of memHeadroomMaxBytes and
// memHeadroomMaxLivePercent of the live heap, so memory stays bounded by
// about 1.5 times the live heap at worst.
//
// The headroom is a GOGC, not a soft memory limit: a limit just above the
// heap binds all the time, and the runtime then hands freed pages back to
// the system as soon as a collection frees them and faults them in again
// for the next allocations (madvise and page faults were an eighth of a
// grown store's CPU per put). Under GOGC the runtime keeps about a tenth
// above the heap goal mapped instead.
//
// GOGC set in the environment wins; GOMEMLIMIT in the environment still
// caps the heap as the runtime does.
const (
	memHeadroomMinBytes   = 32 << 20
	memHeadroomMaxBytes   = 128 << 20
	memHeadroomStartBytes = 64 << 20
	// memHeadroomMaxLivePercent caps the headroom of a large heap.
	memHeadroomMaxLivePercent = 50
	// memGCCPUTargetPercent is the collector's share of the process's CPU
	// the headroom aims at, half the most it should take.
	memGCCPUTargetPercent = 5
	// memHeadroomStepMax bounds how much one adjustment may grow or
	// shrink the headroom, against a burst of garbage swinging it.
	memHeadroomStepMax = 2
	// memLiveMinBytes is the live heap GOGC is computed on when the heap
	// is smaller, the runtime's own minimum heap: a fresh server with next
	// to nothing live gets no more than the headroom.
	memLiveMinBytes = 4 << 20
	// memLimitEvery is how often the headroom follows the collector's
	// CPU share.
	memLimitEvery = time.Second
	// memLiveEvery is how often GOGC follows the live heap: soon after a
	// compaction drops most of it, or the collector would run back to
	// back with the old percentage of a heap that is gone.
	memLiveEvery = 100 * time.Millisecond
)

// memSample is what the policy reads from the runtime.
type memSample struct {
	// liveBytes is the heap marked live by the last collection.
	liveBytes int64
	// gcCycles counts finished collections.
	gcCycles uint64
	// gcCPU and busyCPU are the collector's and the whole process's CPU
	// time so far (busy: not idle), in seconds.
	gcCPUSeconds, busyCPUSeconds float64
}

// memPolicy turns samples into GOGC percents.
type memPolicy struct {
	headroomBytes int64
	// since is the sample the collector's CPU share is measured from: it
	// moves on once a collection has finished after it.
	since memSample
}

func newMemPolicy(first memSample) *memPolicy {
	return &memPolicy{headroomBytes: memHeadroomStartBytes, since: first}
}

// gcPercent adjusts the headroom to the collector's CPU share since the
// last adjustment and returns the GOGC that gives it.
func (p *memPolicy) gcPercent(now memSample) int {
	busy := now.busyCPUSeconds - p.since.busyCPUSeconds
	if now.gcCycles > p.since.gcCycles && busy > 0 {
		share := 100 * (now.gcCPUSeconds - p.since.gcCPUSeconds) / busy
		factor := min(max(share/memGCCPUTargetPercent, 1.0/memHeadroomStepMax), memHeadroomStepMax)
		p.headroomBytes = int64(float64(p.headroomBytes) * factor)
		p.since = now
	}
	return p.percent(now)
}

// percent is the GOGC that gives the headroom above the live heap now,
// the headroom kept within its bounds.
func (p *memPolicy) percent(now memSample) int {
	p.headroomBytes = min(max(p.headroomBytes, memHeadroomMinBytes), max(memHeadroomMaxBytes, now.liveBytes*memHeadroomMaxLivePercent/100))
	return int(p.headroomBytes * 100 / max(now.liveBytes, memLiveMinBytes))
}

// memMetrics are the runtime metrics a memSample is made of, in the
// order readMemSample reads them.
var memMetrics = []string{
	"/gc/heap/live:bytes",
	"/gc/cycles/total:gc-cycles",
	"/cpu/classes/gc/total:cpu-seconds",
	"/cpu/classes/total:cpu-seconds",
	"/cpu/classes/idle:cpu-seconds",
}

// readMemSample reads a sample; ok is false if the runtime lacks one of
// the metrics.
func readMemSample(s []rtmetrics.Sample) (memSample, bool) {
	rtmetrics.Read(s)
	const uints = 2
	u := make([]int64, uints)
	for i := range u {
		if s[i].Value.Kind() != rtmetrics.KindUint64 {
			return memSample{}, false
		}
		u[i] = int64(s[i].Value.Uint64())
	}
	f := make([]float64, 3)
	for i := range f {
		if s[uints+i].Value.Kind() != rtmetrics.KindFloat64 {
			return memSample{}, false
		}
		f[i] = s[uints+i].Value.Float64()
	}
	return memSample{
		liveBytes:      u[0],
		gcCycles:       uint64(u[1]),
		gcCPUSeconds:   f[0],
		busyCPUSeconds: f[1] - f[2],
	}, true
}

// runMemLimit keeps GOGC at the headroom above the live heap until
// stopping is closed.
func runMemLimit(stopping <-chan struct{}) {
	if os.Getenv("GOGC") != "" {
		return
	}
	samples := make([]rtmetrics.Sample, len(memMetrics))
	for i, name := range memMetrics {
		samples[i].Name = name
	}
	first, ok := readMemSample(samples)
	if !ok {
		return
	}
	policy := newMemPolicy(first)
	live := time.NewTicker(memLiveEvery)
	defer live.Stop()
	adjustAt := time.Now().Add(memLimitEvery)
	set := -1
	for {
		now, ok := readMemSample(samples)
		if !ok {
			return
		}
		gogc := policy.percent(now)
		if t := time.Now(); !t.Before(adjustAt) {
			gogc = policy.gcPercent(now)
			adjustAt = t.Add(memLimitEvery)
		}
		if gogc != set {
			debug.SetGCPercent(gogc)
			set = gogc
		}
		select {
		case <-stopping:
			return
		case <-live.C:
		}
	}
}

// memReleaser hands the heap's free pages back to the system after a
// defragmentation, whose purpose is to give space back, instead of over
// the next minute as the runtime's background scavenger does once
// collections have found the compacted slabs dead. It costs a collection
// of the live heap, on a goroutine of its own, off the loop.
type memReleaser struct {
	log *slog.Logger
	// kick holds at most one request: releases asked for while one runs
	// are one more.
	kick chan struct{}
}

func newMemReleaser(log *slog.Logger) *memReleaser {
	return &memReleaser{log: log, kick: make(chan struct{}, 1)}
}

// release asks for the free pages to go back to the system; it never
// waits.
func (r *memReleaser) release() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// afterDefragment is a unary interceptor that asks for a release once a
// defragmentation succeeded.
func (r *memReleaser) afterDefragment(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err == nil && info.FullMethod == pb.Maintenance_Defragment_FullMethodName {
		r.release()
	}
	return resp, err
}

// run releases what is asked until stopping is closed.
func (r *memReleaser) run(stopping <-chan struct{}) {
	released := []rtmetrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	for {
		select {
		case <-stopping:
			return
		case <-r.kick:
		}
		rtmetrics.Read(released)
		before, start := released[0].Value.Uint64(), time.Now()
		debug.FreeOSMemory()
		rtmetrics.Read(released)
		r.log.Info("returned free memory to the system after a defragmentation",
			"bytes", int64(released[0].Value.Uint64())-int64(before), "took", time.Since(start).Round(time.Millisecond).String())
	}
}
