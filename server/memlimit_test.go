package server

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	rtmetrics "runtime/metrics"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// TestMemPolicy: the headroom above the live heap follows the collector's
// CPU share: it grows while collections take more than the target (a
// large heap collected back to back), shrinks while they take less, by at
// most memHeadroomStepMax per adjustment, only once a collection has
// finished since the last one, and within its bounds; GOGC is the
// headroom in percent of the live heap, of at least the runtime's
// minimum heap.
func TestMemPolicy(t *testing.T) {
	const mib = 1 << 20
	type step struct {
		gcCPUSeconds, busyCPUSeconds float64
		newCycle                     bool
		wantHeadroomMiB              int64
	}
	cases := []struct {
		name    string
		liveMiB int64
		steps   []step
	}{
		{"collector busy on a large heap: the room grows to half the live heap", 600, []step{
			{3, 10, true, 128},
			{6, 20, true, 256},
			{9, 30, true, 300},
			{12, 40, true, 300},
		}},
		{"collector idle: the room shrinks to its minimum", 600, []step{
			{0.1, 10, true, 32},
			{0.2, 20, true, 32},
		}},
		{"on target: the room stays", 300, []step{
			{0.5, 10, true, 64},
			{1.0, 20, true, 64},
		}},
		{"no collection finished: no adjustment, however the CPU went", 300, []step{
			{5, 10, false, 64},
			{9, 11, false, 64},
		}},
		{"a small heap may get memHeadroomMaxBytes", 10, []step{
			{3, 10, true, 128},
			{6, 20, true, 128},
		}},
		{"the window runs from the last adjustment", 300, []step{
			{0, 10, false, 64},
			// 1 s of collection over 20 s: 5%.
			{1, 20, true, 64},
		}},
		{"a heap below the runtime's minimum counts as the minimum", 1, []step{
			{0, 10, true, 32},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			now := memSample{liveBytes: c.liveMiB * mib}
			p := newMemPolicy(now)
			for i, s := range c.steps {
				if s.newCycle {
					now.gcCycles++
				}
				now.gcCPUSeconds, now.busyCPUSeconds = s.gcCPUSeconds, s.busyCPUSeconds
				got := p.gcPercent(now)
				if want := int(s.wantHeadroomMiB * 100 / max(c.liveMiB, memLiveMinBytes/mib)); got != want {
					t.Fatalf("step %d: GOGC %d, want %d (headroom %d MiB)", i, got, want, s.wantHeadroomMiB)
				}
			}
		})
	}
}

// TestReadMemSample: this runtime has every metric the policy reads, so
// that the server does not silently run without a limit.
func TestReadMemSample(t *testing.T) {
	samples := make([]rtmetrics.Sample, len(memMetrics))
	for i, name := range memMetrics {
		samples[i].Name = name
	}
	runtime.GC()
	s, ok := readMemSample(samples)
	if !ok || s.liveBytes <= 0 || s.gcCycles == 0 || s.busyCPUSeconds <= 0 {
		t.Fatalf("sample %+v, ok %v", s, ok)
	}
}

// TestMemPolicyFollowsLiveHeap: GOGC follows a drop of the live heap (a
// compaction letting most of it go) at once, keeping the headroom in
// bytes: with the old percentage of a heap that is gone the collector
// would run back to back.
func TestMemPolicyFollowsLiveHeap(t *testing.T) {
	const mib = 1 << 20
	p := newMemPolicy(memSample{liveBytes: 300 * mib})
	for _, c := range []struct {
		liveMiB  int64
		wantGOGC int
	}{
		{300, memHeadroomStartBytes * 100 / (300 * mib)},
		{50, memHeadroomStartBytes * 100 / (50 * mib)},
		{400, memHeadroomStartBytes * 100 / (400 * mib)},
	} {
		if got := p.percent(memSample{liveBytes: c.liveMiB * mib}); got != c.wantGOGC {
			t.Errorf("live heap %d MiB: GOGC %d, want %d", c.liveMiB, got, c.wantGOGC)
		}
	}
}

// TestMemReleaserAfterDefragment: a defragmentation that succeeded asks
// for one release; others, failed calls and further asks while one is
// waiting never block the call.
func TestMemReleaserAfterDefragment(t *testing.T) {
	r := newMemReleaser(slog.New(slog.DiscardHandler))
	call := func(method string, err error) {
		_, got := r.afterDefragment(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: method},
			func(context.Context, any) (any, error) { return nil, err })
		if got != err {
			t.Fatalf("%s: the call's error became %v", method, got)
		}
	}
	call(pb.KV_Put_FullMethodName, nil)
	call(pb.Maintenance_Defragment_FullMethodName, errors.New("refused"))
	if len(r.kick) != 0 {
		t.Fatal("a release asked for without a defragmentation")
	}
	call(pb.Maintenance_Defragment_FullMethodName, nil)
	call(pb.Maintenance_Defragment_FullMethodName, nil)
	if len(r.kick) != 1 {
		t.Fatalf("%d releases waiting after two defragmentations, want one", len(r.kick))
	}
}
