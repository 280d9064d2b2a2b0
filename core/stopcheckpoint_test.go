package core

import "testing"

// TestStopCheckpoint: at a clean stop the node wants a checkpoint only
// when the log applied since the last one began is at least
// StopCheckpointMinBytes and at least the last checkpoint's size. A checkpoint in flight is that beginning: the
// stop waits for it (busy) and wants another only if that much log came
// after it.
func TestStopCheckpoint(t *testing.T) {
	const minBytes = 100
	cases := []struct {
		name       string
		ckpt       checkpointer
		failed     bool
		wantWanted bool
		wantBusy   bool
	}{
		{name: "small tail", ckpt: checkpointer{logBytes: minBytes - 1, lastIndex: 5}},
		{name: "large tail", ckpt: checkpointer{logBytes: minBytes, lastIndex: 5}, wantWanted: true, wantBusy: true},
		{name: "in flight, small tail after", ckpt: checkpointer{logBytes: 10, lastIndex: 5, inflight: true}, wantBusy: true},
		{name: "in flight, large tail after", ckpt: checkpointer{logBytes: minBytes, lastIndex: 5, inflight: true}, wantWanted: true, wantBusy: true},
		{name: "tail below the last checkpoint", ckpt: checkpointer{logBytes: 5 * minBytes, lastIndex: 5, lastSize: 5*minBytes + 1}},
		{name: "tail as big as the last checkpoint", ckpt: checkpointer{logBytes: 5 * minBytes, lastIndex: 5, lastSize: 5 * minBytes}, wantWanted: true, wantBusy: true},
		{name: "nothing since the last", ckpt: checkpointer{logBytes: minBytes, lastIndex: 10}, wantWanted: true},
		{name: "failed member", ckpt: checkpointer{logBytes: minBytes, lastIndex: 5}, failed: true, wantWanted: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := &Node{cfg: Config{StopCheckpointMinBytes: minBytes}, ckpt: tc.ckpt}
			n.st.index = 10
			if tc.failed {
				n.failed = ErrCorrupt
			}
			n.StopCheckpoint()
			if n.ckpt.wanted != tc.wantWanted || n.CheckpointBusy() != tc.wantBusy {
				t.Fatalf("wanted %v, busy %v; want %v, %v", n.ckpt.wanted, n.CheckpointBusy(), tc.wantWanted, tc.wantBusy)
			}
		})
	}
}
