package server

import (
	"os"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// Memory: the key space lives in the Go heap, mostly in large
// pointer-free slabs that are cheap for the collector to scan but that
// GOGC=100 would let the heap double beyond. The server therefore runs
// with a generous GOGC and a soft memory limit a little above what the
// runtime needs now: the live heap, the runtime's own memory (stacks,
// metadata, fragmentation: the limit counts them too), and a headroom
// for new garbage. The headroom is as small as the collector's CPU
// allows: a collection costs about the same whatever the headroom (it
// marks the live heap), and the headroom decides how often one runs, so
// the headroom follows the collector's measured share of the process's
// CPU towards memGCCPUTargetPercent. It stays between memHeadroomMinBytes
// and the larger of memHeadroomMaxBytes and memHeadroomMaxLivePercent of
// the live heap, so memory stays bounded by about 1.5 times the live heap
// at worst. (At 1M revisions a collection marks about a million small
// chain nodes of the index, ~90 ms of one core, and the server allocates
// ~10 KB per put, mostly in gRPC: the old fixed 32 MiB of room meant a
// collection every few hundred milliseconds, a third of the CPU.)
// GOGC or GOMEMLIMIT set in the environment win.
const (
	memGCPercent          = 400
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
	memLimitEvery      = time.Second
)

// memSample is what the policy reads from the runtime.
type memSample struct {
	// liveBytes is the heap marked live by the last collection.
	liveBytes int64
	// runtimeBytes is the memory the limit counts that is neither heap
	// objects nor free heap: stacks, metadata, fragmentation.
	runtimeBytes int64
	// gcCycles counts finished collections.
	gcCycles uint64
	// gcCPU and busyCPU are the collector's and the whole process's CPU
	// time so far (busy: not idle), in seconds.
	gcCPUSeconds, busyCPUSeconds float64
}

// memPolicy turns samples into soft memory limits.
type memPolicy struct {
	headroomBytes int64
	// since is the sample the collector's CPU share is measured from: it
	// moves on once a collection has finished after it.
	since memSample
}

func newMemPolicy(first memSample) *memPolicy {
	return &memPolicy{headroomBytes: memHeadroomStartBytes, since: first}
}

// limit adjusts the headroom to the collector's CPU share since the last
// adjustment and returns the memory limit for now.
func (p *memPolicy) limit(now memSample) int64 {
	busy := now.busyCPUSeconds - p.since.busyCPUSeconds
	if now.gcCycles > p.since.gcCycles && busy > 0 {
		share := 100 * (now.gcCPUSeconds - p.since.gcCPUSeconds) / busy
		factor := min(max(share/memGCCPUTargetPercent, 1.0/memHeadroomStepMax), memHeadroomStepMax)
		p.headroomBytes = int64(float64(p.headroomBytes) * factor)
		p.since = now
	}
	p.headroomBytes = min(max(p.headroomBytes, memHeadroomMinBytes), max(memHeadroomMaxBytes, now.liveBytes*memHeadroomMaxLivePercent/100))
	return now.runtimeBytes + now.liveBytes + p.headroomBytes
}

// memMetrics are the runtime metrics a memSample is made of, in the
// order readMemSample reads them.
var memMetrics = []string{
	"/gc/heap/live:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/objects:bytes",
	"/gc/cycles/total:gc-cycles",
	"/cpu/classes/gc/total:cpu-seconds",
	"/cpu/classes/total:cpu-seconds",
	"/cpu/classes/idle:cpu-seconds",
}

// readMemSample reads a sample; ok is false if the runtime lacks one of
// the metrics.
func readMemSample(s []rtmetrics.Sample) (memSample, bool) {
	rtmetrics.Read(s)
	u := make([]int64, 6)
	for i := range u {
		if s[i].Value.Kind() != rtmetrics.KindUint64 {
			return memSample{}, false
		}
		u[i] = int64(s[i].Value.Uint64())
	}
	f := make([]float64, 3)
	for i := range f {
		if s[6+i].Value.Kind() != rtmetrics.KindFloat64 {
			return memSample{}, false
		}
		f[i] = s[6+i].Value.Float64()
	}
	live, total, released, free, objects := u[0], u[1], u[2], u[3], u[4]
	return memSample{
		liveBytes:      live,
		runtimeBytes:   max(total-released-free-objects, 0),
		gcCycles:       uint64(u[5]),
		gcCPUSeconds:   f[0],
		busyCPUSeconds: f[1] - f[2],
	}, true
}

// runMemLimit sets GOGC and keeps the memory limit above the live heap
// until stopping is closed.
func runMemLimit(stopping <-chan struct{}) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(memGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") != "" {
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
	t := time.NewTicker(memLimitEvery)
	defer t.Stop()
	for {
		now, ok := readMemSample(samples)
		if !ok {
			return
		}
		debug.SetMemoryLimit(policy.limit(now))
		select {
		case <-stopping:
			debug.SetMemoryLimit(-1)
			return
		case <-t.C:
		}
	}
}
