package driver

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/diskfs"
)

// unsyncedFS is a wal.FS that counts the bytes written to its files and
// not yet synced, and those synced.
type unsyncedFS struct {
	wal.FS
	bytes, synced atomic.Int64
}

type unsyncedFile struct {
	wal.File
	fs      *unsyncedFS
	pending atomic.Int64
}

func (u *unsyncedFS) wrap(f wal.File, err error) (wal.File, error) {
	if err != nil {
		return nil, err
	}
	return &unsyncedFile{File: f, fs: u}, nil
}

func (u *unsyncedFS) Create(name string) (wal.File, error) { return u.wrap(u.FS.Create(name)) }

func (u *unsyncedFS) OpenAppend(name string) (wal.File, error) {
	return u.wrap(u.FS.OpenAppend(name))
}

func (f *unsyncedFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.pending.Add(int64(n))
	f.fs.bytes.Add(int64(n))
	return n, err
}

func (f *unsyncedFile) Sync() error {
	err := f.File.Sync()
	if err == nil {
		n := f.pending.Swap(0)
		f.fs.bytes.Add(-n)
		f.fs.synced.Add(n)
	}
	return err
}

// TestLoopAnswersDurable: an idle loop writes a lone request's log entry
// itself, and requests arriving together have it written on a goroutine;
// either way no put is answered before the fsync that covers its entry,
// and every put survives a restart.
func TestLoopAnswersDurable(t *testing.T) {
	dir := t.TempDir()
	fsys := &unsyncedFS{FS: diskfs.New(dir)}
	l := startLooped(t, fsys, soloConfig(1<<40, nil), time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// putChecked puts key; alone, it checks on the loop, as the answer
	// is given, that its entry was synced: bytes were synced since it was
	// handed over, and every byte written so far was.
	putChecked := func(key string, alone bool) error {
		var got error
		err := Await(ctx, l.loop, func(done func()) {
			before := fsys.synced.Load()
			l.d.Request(put(key), func(r core.Response) {
				got = r.Err
				switch n := fsys.bytes.Load(); {
				case !alone || got != nil:
				case n != 0:
					got = fmt.Errorf("%s answered with %d bytes written but not synced", key, n)
				case fsys.synced.Load() == before:
					got = fmt.Errorf("%s answered with nothing synced since it was taken", key)
				}
				done()
			})
		})
		if err != nil {
			return err
		}
		return got
	}
	const lone, together = 20, 64
	for i := range lone {
		if err := putChecked(fmt.Sprintf("lone%d", i), true); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, together)
	var wg sync.WaitGroup
	for i := range together {
		wg.Go(func() { errs <- putChecked(fmt.Sprintf("together%d", i), false) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	l.stop(t)
	l = startLooped(t, diskfs.New(dir), soloConfig(1<<40, nil), time.Second)
	defer l.stop(t)
	if got, want := l.servedRev(t), int64(1+lone+together); got != want {
		t.Errorf("restarted at revision %d, want %d", got, want)
	}
}
