package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/disk"
	"github.com/detcd/detcd/diskfs"
)

// view takes the member's current read view on the loop.
func (l *looped) view(t *testing.T) *mvcc.View {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var v *mvcc.View
	if err := Await(ctx, l.loop, func(done func()) {
		l.d.View(func(got *mvcc.View, _ *pb.ResponseHeader) { v = got; done() })
	}); err != nil {
		t.Fatalf("view: %v", err)
	}
	return v
}

// keys reads every key of v with its value and revision.
func keys(t *testing.T, v *mvcc.View) string {
	t.Helper()
	res, err := v.Range([]byte{0}, []byte{}, mvcc.RangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, kv := range res.KVs {
		fmt.Fprintf(&b, "%s=%s@%d ", kv.Key, kv.Value, kv.ModRevision)
	}
	return b.String()
}

// stoppedWithCheckpoint runs a member on a real disk in a new directory
// and stops it after enough puts that the stop writes a checkpoint, which
// the next start maps.
func stoppedWithCheckpoint(t *testing.T) (string, wal.FS) {
	dir := t.TempDir()
	fsys := diskfs.New(dir)
	l := startLooped(t, fsys, soloConfig(1, nil), time.Minute)
	for i := 0; i < stopPutsMax; i++ {
		l.put(t, fmt.Sprintf("k%03d", i))
	}
	l.stop(t)
	return dir, fsys
}

// TestViewOutlivesMappedCheckpoint: a member restarted on a checkpoint
// (mapped from its file) hands out a view; a later checkpoint then
// replaces that file, which the release removes. The view, whose records
// alias the removed file's mapping, still reads every key as before.
func TestViewOutlivesMappedCheckpoint(t *testing.T) {
	dir, fsys := stoppedWithCheckpoint(t)
	snapDir := filepath.Join(dir, "data", "member", "snap")
	first, err := filepath.Glob(filepath.Join(snapDir, "*.ckpt"))
	if err != nil || len(first) != 1 {
		t.Fatalf("checkpoints after the stop: %v %v", first, err)
	}

	l := startLooped(t, fsys, soloConfig(1, nil), time.Minute)
	if maps, err := os.ReadFile("/proc/self/maps"); err == nil && !strings.Contains(string(maps), first[0]) {
		t.Fatalf("the restart did not map %s", first[0])
	}
	before := l.view(t)
	want := keys(t, before)
	if want == "" {
		t.Fatal("the view read no key")
	}
	for i := 0; i < stopPutsMax; i++ {
		l.put(t, fmt.Sprintf("k%03d", i)) // every key gets a newer revision
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Await(ctx, l.loop, func(done func()) { l.d.Node().ForceCheckpoint(); l.d.Process(); done() }); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(first[0]); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was never released", first[0])
		}
	}
	if got := keys(t, before); got != want {
		t.Fatalf("the view reads otherwise once its checkpoint file is gone:\n%s\nwant\n%s", got, want)
	}
	if got := keys(t, l.view(t)); got == want {
		t.Fatalf("the new view reads the old revisions: %s", got[:min(len(got), 200)])
	}
	l.stop(t)
}

// TestDamagedMappedCheckpoint: a restart on a damaged checkpoint fails
// with an error naming the file, never a fresh start.
func TestDamagedMappedCheckpoint(t *testing.T) {
	dir, fsys := stoppedWithCheckpoint(t)
	ckpts, err := filepath.Glob(filepath.Join(dir, "data", "member", "snap", "*.ckpt"))
	if err != nil || len(ckpts) != 1 {
		t.Fatalf("checkpoints after the stop: %v %v", ckpts, err)
	}
	f, err := os.OpenFile(ckpts[0], os.O_RDWR, 0)
	if err == nil {
		_, err = f.WriteAt([]byte{0xff, 0xff}, 100)
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = disk.Open(fsys, "data", soloConfig(1, nil), disk.Options{SegmentBytes: 1 << 20})
	if !errors.Is(err, wal.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(ckpts[0])) {
		t.Fatalf("restart on a damaged checkpoint: %v, want corruption naming %s", err, filepath.Base(ckpts[0]))
	}
}
