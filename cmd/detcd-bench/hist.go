package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// hist is a latency histogram safe for concurrent adds: exact to the
// microsecond below 1.024 ms, then 64 buckets per power of two (within
// 1.6%). The watch benchmark records millions of deliveries, too many to
// keep each one.
type hist struct {
	counts [histBuckets]atomic.Int64
	max    atomic.Int64 // ns
}

const (
	histExact   = 1024 // microseconds recorded exactly
	histSub     = 64   // buckets per power of two above that
	histBuckets = histExact + (63-10)*histSub
)

func histIndex(us int64) int {
	if us < histExact {
		return int(max(us, 0))
	}
	e := bits.Len64(uint64(us)) - 1 // >= 10
	sub := int(us>>(e-6)) & (histSub - 1)
	i := histExact + (e-10)*histSub + sub
	return min(i, histBuckets-1)
}

// histValue is the middle of bucket i, in microseconds.
func histValue(i int) float64 {
	if i < histExact {
		return float64(i)
	}
	e := (i-histExact)/histSub + 10
	sub := (i - histExact) % histSub
	lo := int64(1)<<e + int64(sub)<<(e-6)
	return float64(lo) + float64(int64(1)<<(e-6))/2
}

func (h *hist) add(d time.Duration) {
	h.counts[histIndex(d.Microseconds())].Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

func (h *hist) count() int64 {
	var n int64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// pct is the p-th percentile (nearest rank), in ms.
func (h *hist) pct(p float64) float64 {
	n := h.count()
	if n == 0 {
		return 0
	}
	rank := int64(float64(n)*p/100 + 0.999999)
	rank = max(rank, 1)
	var c int64
	for i := range h.counts {
		c += h.counts[i].Load()
		if c >= rank {
			return histValue(i) / 1000
		}
	}
	return h.maxMs()
}

func (h *hist) maxMs() float64 { return ms(time.Duration(h.max.Load())) }
