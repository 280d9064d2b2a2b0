package driver

import (
	"context"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/detcd/detcd/core/watch"
)

// fakeClock's time moves only when Sleep is called.
type fakeClock struct {
	now   time.Time
	slept []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(_ context.Context, d time.Duration) error {
	c.slept = append(c.slept, d)
	c.now = c.now.Add(d)
	return nil
}

// batch is n event responses, for watchers 0..n-1, the i-th carrying
// the event of revision revs[i%len(revs)].
func batch(n int, revs ...int64) []watch.Out {
	outs := make([]watch.Out, n)
	for i := range outs {
		rev := revs[i%len(revs)]
		outs[i] = watch.Out{Resp: &pb.WatchResponse{WatchId: int64(i), Events: []*mvccpb.Event{{Kv: &mvccpb.KeyValue{Key: []byte("k"), ModRevision: rev}}}}}
	}
	return outs
}

// TestWatchSinkBatchGap: a stream that fell behind (a batch of at least
// DefaultWatchBusyOuts responses over two revisions) takes its next batch no
// sooner than the gap after the last; one that keeps up never waits; one
// that waited goes on waiting only while its batches span three
// revisions or more; without a clock (the simulator) nothing waits.
func TestWatchSinkBatchGap(t *testing.T) {
	const gap = 10 * time.Millisecond
	for _, tc := range []struct {
		name    string
		clock   bool
		batches [][]watch.Out
		// sent is the time each batch takes to send, before the next Next.
		sent      time.Duration
		wantSlept []time.Duration
	}{
		{"keeps up: one revision a batch", true, [][]watch.Out{batch(1000, 5), batch(1000, 6), batch(1000, 7)}, 3 * time.Millisecond, nil},
		{"few responses", true, [][]watch.Out{batch(DefaultWatchBusyOuts-1, 5, 6), batch(10, 7)}, 0, nil},
		{"behind", true, [][]watch.Out{batch(256, 5, 6), batch(256, 7, 8, 9), batch(256, 10)}, 3 * time.Millisecond, []time.Duration{7 * time.Millisecond, 7 * time.Millisecond}},
		{"behind, then a revision per gap", true, [][]watch.Out{batch(256, 5, 6), batch(256, 7, 8), batch(256, 9)}, 4 * time.Millisecond, []time.Duration{6 * time.Millisecond}},
		{"merged revisions in one response", true, [][]watch.Out{append(batch(100, 5), watch.Out{Resp: &pb.WatchResponse{Events: []*mvccpb.Event{{Kv: &mvccpb.KeyValue{ModRevision: 5}}, {Kv: &mvccpb.KeyValue{ModRevision: 6}}}}}), batch(100, 7)}, 0, []time.Duration{gap}},
		{"no clock", false, [][]watch.Out{batch(256, 5, 6), batch(256, 7, 8, 9), batch(256, 10)}, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Unix(1000, 0)}
			f := &Frontend{cfg: FrontendConfig{WatchBatchGap: gap, WatchBusyOuts: DefaultWatchBusyOuts}}
			if tc.clock {
				f.cfg.WatchClock = clock
			}
			w := &watchSink{f: f}
			for i, b := range tc.batches {
				for _, o := range b {
					w.Push(o)
				}
				got, err := w.Next(context.Background())
				if err != nil || len(got) != len(b) {
					t.Fatalf("batch %d: %d responses, %v; want %d", i, len(got), err, len(b))
				}
				clock.now = clock.now.Add(tc.sent)
			}
			if len(clock.slept) != len(tc.wantSlept) {
				t.Fatalf("slept %v, want %v", clock.slept, tc.wantSlept)
			}
			for i := range clock.slept {
				if clock.slept[i] != tc.wantSlept[i] {
					t.Fatalf("slept %v, want %v", clock.slept, tc.wantSlept)
				}
			}
		})
	}
}
