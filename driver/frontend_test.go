package driver

import (
	"context"
	"testing"
	"time"

	"github.com/detcd/detcd/diskfs"
)

// TestViewMadeForReadsAfterWrites: while serializable reads come, a
// write's answer publishes the view of its revision, so that the read
// after it finds the view current without asking the loop; without reads
// no view is made.
func TestViewMadeForReadsAfterWrites(t *testing.T) {
	l := startLooped(t, diskfs.New(t.TempDir()), soloConfig(1<<40, nil), time.Second)
	defer l.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var f *Frontend
	if err := Await(ctx, l.loop, func(done func()) { f = NewFrontend(l.d, l.loop, FrontendConfig{}); done() }); err != nil {
		t.Fatal(err)
	}
	putRev := func(key string) int64 {
		t.Helper()
		resp, err := f.Do(ctx, put(key))
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		return f.Rev()
	}
	if _, _, err := f.SerializableView(ctx); err != nil {
		t.Fatal(err)
	}
	rev := putRev("a")
	if pv := f.view.Load(); !f.viewCurrent(pv) {
		t.Fatalf("after a read and a put at revision %d, the published view is not current", rev)
	}
	v, _, err := f.SerializableView(ctx)
	if err != nil || int64(v.Rev()) != rev {
		t.Fatalf("serializable view at %v (err %v), want revision %d", v.Rev(), err, rev)
	}
	putRev("b")
	rev = putRev("c")
	if pv := f.view.Load(); f.viewCurrent(pv) || int64(pv.view.Rev()) == rev {
		t.Fatalf("a put with no read since the last made a view at revision %d", rev)
	}
}
