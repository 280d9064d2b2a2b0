package tests

// A large store with real processes (issue 18): one detcd member filled
// to a few hundred MB, a learner added, caught up and promoted, a voter
// added, and that voter restarted, each new member's peak RSS bounded by
// the leader's data dir, while a writer on the leader sees no failure and
// the leader keeps its term. Slow (minutes): it runs with -large.mb, as
// `make test-large` does.

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var largeStoreMB = flag.Int("large.mb", 0, "TestLargeStore: MB of 1 KiB values to fill the first member with (0: skip the test)")

const (
	// largeValueBytes is the value size of the fill, as issue 18's
	// measurements (etcd's benchmark tool's 1 KiB values).
	largeValueBytes = 1024
	// largeFillClients is how many fill requests run at once.
	largeFillClients = 64
	// largeCatchUpMax bounds how long a new member may take to catch up.
	largeCatchUpMax = 10 * time.Minute
	// probeEvery is the pace of the writer on the leader during the joins.
	probeEvery = 20 * time.Millisecond
	// probeFailuresKept is how many of the writer's errors are reported.
	probeFailuresKept = 5
)

// TestLargeStore: join, learner promotion and restart on a store of
// -large.mb MB, with the new members' peak RSS at most twice the leader's
// data dir size, no write failing on the leader meanwhile and the leader
// keeping its term.
func TestLargeStore(t *testing.T) {
	if testing.Short() || *largeStoreMB <= 0 {
		t.Skip("a large store takes minutes: run with -large.mb=N (make test-large)")
	}
	c := startCtlCluster(t, 1)
	m1 := c.members["m1"]
	cli := newClient(t, m1.endpoint())
	t.Cleanup(func() { cli.Close() })
	fillLarge(t, cli, *largeStoreMB<<20)
	lead := memberStatus(t, cli, m1.endpoint())
	dirBytes := dirSize(t, m1.dataDir)
	t.Logf("filled: revision %d, leader data dir %d MiB, leader VmRSS %d MiB", lead.rev, dirBytes>>20, procKB(t, m1.proc, "VmRSS")>>10)

	probe := startProbe(cli)
	// etcd's recommended path: a learner, caught up, then promoted.
	id, cp, pp, initial := c.addMember(c.endpoints("m1"), "m2", true)
	m2 := c.start("m2", cp, pp, initial, "existing")
	catchUp(t, cli, m1, m2, dirBytes)
	c.promote(c.endpoints("m1"), id, time.Minute)
	// A voter added directly: with m1 and m2 up, the quorum holds while
	// it catches up.
	_, cp, pp, initial = c.addMember(c.endpoints("m1"), "m3", false)
	m3 := c.start("m3", cp, pp, initial, "existing")
	catchUp(t, cli, m1, m3, dirBytes)
	// And a restart of it, from its data dir.
	if code := m3.terminate(time.Minute); code != 0 {
		t.Fatalf("m3 stopped with status %d", code)
	}
	m3 = c.startIn(m3.dataDir, "m3", m3.clientPort, m3.peerPort, initial, "existing")
	catchUp(t, cli, m1, m3, dirBytes)

	puts, failed, failures := probe.stop()
	if failed > 0 {
		t.Errorf("%d of %d puts on the leader failed during the joins, first: %s", failed, puts, strings.Join(failures, "; "))
	}
	after := memberStatus(t, cli, m1.endpoint())
	if after.term != lead.term || after.leader != lead.leader {
		t.Errorf("the leader changed during the joins: term %d -> %d, leader %x -> %x", lead.term, after.term, lead.leader, after.leader)
	}
	for _, m := range []*detcdProc{m2, m3} {
		waitRevision(t, cli, m1, m)
	}
	t.Logf("%d puts on the leader meanwhile, %d failed; term %d -> %d", puts, failed, lead.term, after.term)
}

// fillLarge writes keys of 1 KiB values, one put per request as etcd's
// benchmark tool does, until they add up to total bytes. One put per
// entry makes the leader's log long enough to be compacted, so that a new
// member catches up from a snapshot, not by replaying the whole log.
func fillLarge(t *testing.T, cli *clientv3.Client, total int) {
	t.Helper()
	keys := int64(total / largeValueBytes)
	value := strings.Repeat("v", largeValueBytes)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range largeFillClients {
		wg.Go(func() {
			for n := next.Add(1) - 1; n < keys && failed.Load() == nil; n = next.Add(1) - 1 {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := cli.Put(ctx, fmt.Sprintf("large/%09d", n), value)
				cancel()
				if err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		t.Fatalf("fill: %v", *err)
	}
}

type memberState struct {
	rev, term, leader uint64
}

// memberStatus is the status one member answers, from its own state.
func memberStatus(t *testing.T, cli *clientv3.Client, endpoint string) memberState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := cli.Status(ctx, strings.TrimPrefix(endpoint, "http://"))
	if err != nil {
		t.Fatalf("status of %s: %v", endpoint, err)
	}
	return memberState{rev: uint64(st.Header.Revision), term: st.RaftTerm, leader: st.Leader}
}

// catchUp waits until m has the revision the leader had when it started
// waiting, then checks m's peak RSS against twice the leader's data dir.
func catchUp(t *testing.T, cli *clientv3.Client, leader, m *detcdProc, dirBytes int64) {
	t.Helper()
	t0 := time.Now()
	want := memberStatus(t, cli, leader.endpoint()).rev
	for {
		if m.exited() {
			t.Fatalf("%s exited while catching up: %v", m.name, m.err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := cli.Status(ctx, strings.TrimPrefix(m.endpoint(), "http://"))
		cancel()
		if err == nil && uint64(st.Header.Revision) >= want {
			break
		}
		if time.Since(t0) > largeCatchUpMax {
			t.Fatalf("%s not at revision %d after %v (status %v, %v)", m.name, want, largeCatchUpMax, st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	hwm := procKB(t, m.proc, "VmHWM") << 10
	t.Logf("%s caught up with revision %d in %.1f s (from %s), peak RSS %d MiB (leader's data dir %d MiB)",
		m.name, want, time.Since(t0).Seconds(), t0.Format(time.TimeOnly), hwm>>20, dirBytes>>20)
	if hwm > 2*dirBytes {
		t.Errorf("%s's peak RSS %d MiB is over twice the leader's data dir, %d MiB", m.name, hwm>>20, dirBytes>>20)
	}
}

// waitRevision waits until m is at the leader's revision, with no writes
// going on.
func waitRevision(t *testing.T, cli *clientv3.Client, leader, m *detcdProc) {
	t.Helper()
	want := memberStatus(t, cli, leader.endpoint()).rev
	var got uint64
	for range 300 {
		if got = memberStatus(t, cli, m.endpoint()).rev; got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("%s at revision %d, the leader at %d", m.name, got, want)
}

// probe puts a key on the leader every probeEvery until stopped, counting
// the puts that fail (5 s each at most, etcd's request timeout).
type probe struct {
	done     chan struct{}
	finished chan struct{}
	puts     int
	failed   int
	failures []string // the first probeFailuresKept
}

func startProbe(cli *clientv3.Client) *probe {
	p := &probe{done: make(chan struct{}), finished: make(chan struct{})}
	go func() {
		defer close(p.finished)
		tick := time.NewTicker(probeEvery)
		defer tick.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := cli.Put(ctx, "probe/"+strconv.Itoa(p.puts%100), "x")
			cancel()
			p.puts++
			if err == nil {
				continue
			}
			p.failed++
			if len(p.failures) < probeFailuresKept {
				p.failures = append(p.failures, fmt.Sprintf("%s: %v", time.Now().Format(time.TimeOnly), err))
			}
		}
	}()
	return p
}

// stop ends the puts and returns how many were made and failed, and the
// first failures.
func (p *probe) stop() (puts, failed int, failures []string) {
	close(p.done)
	<-p.finished
	return p.puts, p.failed, p.failures
}

// procKB reads a kB field (VmRSS, VmHWM) of the process's /proc status.
func procKB(t *testing.T, p *proc, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %s: %v", p.name, line, err)
			}
			return kb
		}
	}
	t.Fatalf("%s: no %s in its status", p.name, field)
	return 0
}

// dirSize is the size of the files under dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		n += fi.Size()
		return err
	})
	if err != nil {
		t.Fatalf("size of %s: %v", dir, err)
	}
	return n
}
