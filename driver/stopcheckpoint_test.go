package driver

import (
	"context"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/disk"
	"github.com/detcd/detcd/diskfs"
)

// stopPutsMax is how many puts the stop tests write before stopping.
const stopPutsMax = 200

// looped is a single member on a real directory, run by the real loop.
type looped struct {
	loop *Loop
	d    *Driver
	dk   *disk.Disk
	ran  chan struct{}
}

func soloConfig(stopMinBytes int64, onApply func(index, term uint64, data []byte)) core.Config {
	return core.Config{ID: 1, ClusterID: 100, ProposalEpoch: 1 << 40, StopCheckpointMinBytes: stopMinBytes, OnApply: onApply,
		Members: []core.Member{{ID: 1, Name: "m1", PeerURLs: []string{"http://127.0.0.1:2380"}}}}
}

func startLooped(t *testing.T, fsys wal.FS, cfg core.Config, stopMax time.Duration) *looped {
	t.Helper()
	n, dk, err := disk.Open(fsys, "data", cfg, disk.Options{SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	loop, err := NewLoop(LoopConfig{Tick: 10 * time.Millisecond, StopCheckpointMax: stopMax, Fatal: func(err error) { t.Errorf("fatal: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Node: n, Disk: dk, Env: loop, Transport: noTransport{t}})
	if err != nil {
		t.Fatal(err)
	}
	l := &looped{loop: loop, d: d, dk: dk, ran: make(chan struct{})}
	go func() { loop.Run(d); close(l.ran) }()
	return l
}

// put writes key through the loop and waits for its answer.
func (l *looped) put(t *testing.T, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got error
	err := Await(ctx, l.loop, func(done func()) {
		l.d.Request(put(key), func(r core.Response) { got = r.Err; done() })
	})
	if err == nil {
		err = got
	}
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// servedRev waits until the member serves local reads and returns the
// revision it serves.
func (l *looped) servedRev(t *testing.T) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rev int64
	err := Await(ctx, l.loop, func(done func()) {
		l.d.View(func(v *mvcc.View, _ *pb.ResponseHeader) { rev = int64(v.Rev()); done() })
	})
	if err != nil {
		t.Fatalf("view: %v", err)
	}
	return rev
}

func (l *looped) stop(t *testing.T) {
	t.Helper()
	l.loop.Stop()
	<-l.ran
	if err := l.dk.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestStopCheckpoint: a clean stop with a log tail at least
// StopCheckpointMinBytes writes a checkpoint, so that the restart applies
// no entry again; below it, the stop leaves the tail to be replayed. A
// stop that gives up on its checkpoint at once leaves a directory that
// restarts with every write. Either way the restarted member holds every
// put.
func TestStopCheckpoint(t *testing.T) {
	cases := []struct {
		name         string
		stopMinBytes int64
		stopMax      time.Duration
		wantReplay   bool // whether the restart must apply the puts again
		anyReplay    bool // the stop may or may not finish its checkpoint
	}{
		{name: "large tail", stopMinBytes: 1, stopMax: time.Minute},
		{name: "small tail", stopMinBytes: 1 << 30, stopMax: time.Minute, wantReplay: true},
		{name: "abandoned", stopMinBytes: 1, stopMax: time.Nanosecond, anyReplay: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fsys := diskfs.New(t.TempDir())
			l := startLooped(t, fsys, soloConfig(tc.stopMinBytes, nil), tc.stopMax)
			for i := 0; i < stopPutsMax; i++ {
				l.put(t, fmt.Sprintf("k%03d", i))
			}
			l.stop(t)

			replayed := 0
			cfg := soloConfig(tc.stopMinBytes, func(_, _ uint64, data []byte) {
				if len(data) > 0 {
					replayed++
				}
			})
			l = startLooped(t, fsys, cfg, tc.stopMax)
			rev := l.servedRev(t)
			l.stop(t)
			switch {
			case tc.anyReplay:
			case tc.wantReplay && replayed < stopPutsMax:
				t.Errorf("the restart applied %d entries, want the %d puts again", replayed, stopPutsMax)
			case !tc.wantReplay && replayed != 0:
				t.Errorf("the restart applied %d entries after a stop checkpoint, want none", replayed)
			}
			if rev != stopPutsMax+1 {
				t.Errorf("restarted at revision %d, want %d", rev, stopPutsMax+1)
			}
		})
	}
}
