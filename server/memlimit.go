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
// with a generous GOGC and keeps a soft memory limit a little above the
// live heap: a small heap gets room (fewer collections, less CPU per
// request), a large one gets memHeadroomMinBytes, so a member holding
// gigabytes does not need twice that. GOGC or GOMEMLIMIT set in the
// environment win.
const (
	memGCPercent        = 400
	memHeadroomMinBytes = 32 << 20
	memHeadroomMaxBytes = 128 << 20
	memLimitEvery       = time.Second
)

// memHeadroom is the room above the live heap: shrinking from the maximum
// as the heap grows, never below the minimum.
func memHeadroom(live int64) int64 {
	return max(memHeadroomMinBytes, memHeadroomMaxBytes-live/2)
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
	sample := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(memLimitEvery)
	defer t.Stop()
	for {
		metrics := func() bool {
			rtmetrics.Read(sample)
			if sample[0].Value.Kind() != rtmetrics.KindUint64 {
				return false
			}
			live := int64(sample[0].Value.Uint64())
			debug.SetMemoryLimit(live + memHeadroom(live))
			return true
		}
		if !metrics() {
			return
		}
		select {
		case <-stopping:
			debug.SetMemoryLimit(-1)
			return
		case <-t.C:
		}
	}
}
