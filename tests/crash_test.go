package tests

// Crash tests of the detcd binary: a concurrent put workload, kill -9 in
// the middle, a restart on the same data directory, and a check that every
// acknowledged put survived and the revision did not go back. Three rounds
// on one data directory, so later restarts recover from checkpoints and
// from logs whose tails a kill tore. And a graceful stop: SIGTERM, exit
// code 0, everything there after a restart.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Workload bounds, per round.
const (
	crashWorkers      = 16
	crashMaxPuts      = 20000
	crashMaxDuration  = 5 * time.Second
	crashKeysPerGorou = 200 // each goroutine overwrites its own keys
	crashPrefix       = "crash/"
	// crashValuePad makes values big enough that the three rounds write
	// more than detcd's 64 MiB of log between checkpoints, so that the
	// last restarts start from a checkpoint (and a kill may land while one
	// is being written).
	crashValuePad = 8 << 10
)

// write is one put the workload sent. A put whose answer did not come
// (the server died, or it timed out) may or may not have happened.
type write struct {
	value string
	acked bool
	rev   int64 // the put's revision, if acked
}

// ledger is every put sent, per key, in the order sent. Each key belongs
// to one goroutine, which sends its puts one at a time, so the order sent
// is the order they can take effect in.
type ledger struct {
	perWorker [crashWorkers]map[string][]write
	maxAcked  int64
}

func newLedger() *ledger {
	l := &ledger{}
	for i := range l.perWorker {
		l.perWorker[i] = map[string][]write{}
	}
	return l
}

func newClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// runWorkload puts from crashWorkers goroutines until crashMaxPuts puts,
// crashMaxDuration, or each goroutine's first failed put (usually after
// the kill). killAt, if positive, is the number of acknowledged puts after
// which kill is called, once, while the puts go on. It returns how many
// puts were acknowledged and how many failed while the server was up.
func runWorkload(t *testing.T, cli *clientv3.Client, l *ledger, round int, killAt int64, kill func()) (acked, failedUp int64) {
	t.Helper()
	var budget, sent, ack, failed atomic.Int64
	var killOnce sync.Once
	killed := make(chan struct{})
	deadline := time.Now().Add(crashMaxDuration)
	pad := strings.Repeat("p", crashValuePad)
	var wg sync.WaitGroup
	var maxRev atomic.Int64
	for g := range crashWorkers {
		keys := l.perWorker[g]
		wg.Go(func() {
			for seq := 0; time.Now().Before(deadline) && budget.Add(1) <= crashMaxPuts; seq++ {
				key := fmt.Sprintf("%sg%02d/k%03d", crashPrefix, g, seq%crashKeysPerGorou)
				val := fmt.Sprintf("r%d-g%02d-s%06d-%s", round, g, seq, pad)
				keys[key] = append(keys[key], write{value: val})
				sent.Add(1)
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				resp, err := cli.Put(ctx, key, val)
				cancel()
				if err != nil {
					select {
					case <-killed:
					default:
						// Not a failure (a slow disk can time a put out),
						// but the outcome is unknown from here on.
						t.Logf("put %s failed with the server up: %v", key, err)
						failed.Add(1)
					}
					return // the ledger says the outcome is unknown
				}
				w := &keys[key][len(keys[key])-1]
				w.acked, w.rev = true, resp.Header.Revision
				for {
					m := maxRev.Load()
					if w.rev <= m || maxRev.CompareAndSwap(m, w.rev) {
						break
					}
				}
				if n := ack.Add(1); killAt > 0 && n >= killAt {
					killOnce.Do(func() { close(killed); kill() })
				}
			}
		})
	}
	wg.Wait()
	if killAt > 0 {
		killOnce.Do(func() {
			t.Logf("round %d: the workload ended before %d acknowledged puts; killing now", round, killAt)
			close(killed)
			kill()
		})
	}
	l.maxAcked = max(l.maxAcked, maxRev.Load())
	t.Logf("round %d: %d puts sent, %d acknowledged, newest acknowledged revision %d", round, sent.Load(), ack.Load(), maxRev.Load())
	return ack.Load(), failed.Load()
}

// verify checks the member's key space against the ledger: every key
// holds its last acknowledged value (at that put's revision) or a value a
// later put sent (whose answer was lost), and nothing else is there; the
// revision is at least every acknowledged one and at least minRev. It
// returns the member's revision.
func verify(t *testing.T, cli *clientv3.Client, l *ledger, minRev int64) int64 {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	resp, err := cli.Get(ctx, crashPrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	rev := resp.Header.Revision
	if rev < l.maxAcked || rev < minRev {
		t.Errorf("revision went back: %d after restart, but %d was acknowledged and %d seen before", rev, l.maxAcked, minRev)
	}
	stored := map[string]int{}
	for i, kv := range resp.Kvs {
		stored[string(kv.Key)] = i
	}
	var checked, history int
	for g := range l.perWorker {
		for key, ws := range l.perWorker[g] {
			lastAcked := -1
			for i, w := range ws {
				if w.acked {
					lastAcked = i
				}
			}
			i, ok := stored[key]
			delete(stored, key)
			if !ok {
				if lastAcked >= 0 {
					t.Errorf("%s: lost; %.30q was acknowledged at revision %d", key, ws[lastAcked].value, ws[lastAcked].rev)
				}
				continue
			}
			kv := resp.Kvs[i]
			j := -1
			for k, w := range ws {
				if w.value == string(kv.Value) {
					j = k
				}
			}
			switch {
			case j < 0:
				t.Errorf("%s: holds %.40q, which no put sent", key, kv.Value)
			case j < lastAcked:
				t.Errorf("%s: holds %.30q (mod revision %d), older than %.30q acknowledged at revision %d", key, kv.Value, kv.ModRevision, ws[lastAcked].value, ws[lastAcked].rev)
			case ws[j].acked && kv.ModRevision != ws[j].rev:
				t.Errorf("%s: %.30q has mod revision %d, but was acknowledged at revision %d", key, kv.Value, kv.ModRevision, ws[j].rev)
			case !ws[j].acked && lastAcked >= 0 && kv.ModRevision <= ws[lastAcked].rev:
				t.Errorf("%s: %.30q, never acknowledged, has mod revision %d, not after the acknowledged %d", key, kv.Value, kv.ModRevision, ws[lastAcked].rev)
			}
			checked++
			// Older acknowledged puts are in the history too (nothing is
			// compacted): look some of them up at their revisions.
			for k := range lastAcked {
				w := ws[k]
				if !w.acked || (k+g)%50 != 0 {
					continue
				}
				h, err := cli.Get(ctx, key, clientv3.WithRev(w.rev))
				switch {
				case err != nil:
					t.Errorf("%s at revision %d: %v", key, w.rev, err)
				case len(h.Kvs) != 1 || string(h.Kvs[0].Value) != w.value || h.Kvs[0].ModRevision != w.rev:
					t.Errorf("%s at revision %d: %d kvs, want %.30q put at that revision", key, w.rev, len(h.Kvs), w.value)
				}
				history++
			}
		}
	}
	for key := range stored {
		t.Errorf("%s: present, but no put sent it", key)
	}
	t.Logf("verified %d keys and %d older revisions at revision %d", checked, history, rev)
	return rev
}

func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	l := newLedger()
	var clientPort, peerPort int
	var rev int64
	const rounds = 3
	for round := range rounds {
		d := startDetcd(t, dir, clientPort, peerPort, "--snapshot-count=1000")
		clientPort, peerPort = d.clientPort, d.peerPort
		cli := newClient(t, d.endpoint())
		rev = verify(t, cli, l, rev)
		// Kill at a different point each round, while puts are in flight.
		runWorkload(t, cli, l, round, int64(2000+1500*round), d.kill)
		cli.Close()
		logDataDir(t, dir)
		if t.Failed() {
			return
		}
	}
	d := startDetcd(t, dir, clientPort, peerPort, "--snapshot-count=1000")
	cli := newClient(t, d.endpoint())
	defer cli.Close()
	verify(t, cli, l, rev)
}

func TestGracefulStop(t *testing.T) {
	dir := t.TempDir()
	l := newLedger()
	d := startDetcd(t, dir, 0, 0, "--snapshot-count=1000")
	cli := newClient(t, d.endpoint())
	acked, failed := runWorkload(t, cli, l, 0, 0, nil)
	cli.Close()
	if code := d.terminate(30 * time.Second); code != 0 {
		t.Fatalf("detcd exited with %d after SIGTERM, want 0", code)
	}
	d = startDetcd(t, dir, d.clientPort, d.peerPort, "--snapshot-count=1000")
	cli = newClient(t, d.endpoint())
	defer cli.Close()
	rev := verify(t, cli, l, 0)
	// With every put acknowledged, the revision is exactly theirs.
	if want := 1 + acked; failed == 0 && (rev != want || l.maxAcked != want) {
		t.Errorf("revision after restart %d, newest acknowledged %d, want %d (1 + %d puts)", rev, l.maxAcked, want, acked)
	}
}

// logDataDir logs the data directory's files, to show what a restart
// recovered from (log segments, checkpoints).
func logDataDir(t *testing.T, dir string) {
	var files []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				rel, _ := filepath.Rel(dir, path)
				files = append(files, fmt.Sprintf("%s (%d bytes)", rel, info.Size()))
			}
		}
		return nil
	})
	t.Logf("data dir: %s", strings.Join(files, ", "))
}
