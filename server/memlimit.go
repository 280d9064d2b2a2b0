package server

import (
	"os"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// Memory: the key space lives in the Go heap, mostly in large
// pointer-free slabs that are cheap for the collector to scan but that
// GOGC=100 would let the heap double beyond. The server therefore keeps a
// soft memory limit a little above the live heap: the collector runs when
// the heap grows by memHeadroomBytes (or a sixteenth) instead of by the whole
// live heap. At small heaps GOGC still rules. GOMEMLIMIT, if set, wins.
const (
	memHeadroomBytes = 32 << 20
	memLimitEvery    = time.Second
)

func (s *Server) runMemLimit() {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	sample := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(memLimitEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stopping:
			debug.SetMemoryLimit(-1)
			return
		case <-t.C:
		}
		rtmetrics.Read(sample)
		if sample[0].Value.Kind() != rtmetrics.KindUint64 {
			return
		}
		live := int64(sample[0].Value.Uint64())
		debug.SetMemoryLimit(live + max(memHeadroomBytes, live/16))
	}
}
