package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// detcd-bench compact: does a large compaction stall writes? A fill writes
// --revisions puts over --keys keys as fast as --clients can; then
// --writers put at --rate per second while, after --before, the store is
// compacted at the fill's last revision (physical: the call waits for the
// work), then defragmented, then --after more. Each put's latency counts
// in the phase it was sent in.

// compactPhases name the phases of the rate load, in order.
var compactPhases = []string{"before", "compact", "defrag", "after"}

// PhaseLatency is the puts sent during one phase.
type PhaseLatency struct {
	Phase  string  `json:"phase"`
	Puts   int64   `json:"puts"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// CompactResult is the summary of a compact run.
type CompactResult struct {
	Op         string  `json:"op"` // "compact"
	Revisions  int     `json:"revisions"`
	Keys       int     `json:"keys"`
	FillSec    float64 `json:"fill_s"`
	FillPerSec float64 `json:"fill_puts_per_s"`
	// FillServerCPUus is the server's CPU per put of the fill.
	FillServerCPUus *float64       `json:"fill_server_cpu_us_per_put,omitempty"`
	CompactRev      int64          `json:"compact_rev"`
	CompactSec      float64        `json:"compact_s"`
	DefragSec       float64        `json:"defrag_s"`
	Rate            float64        `json:"rate"`
	Phases          []PhaseLatency `json:"phases"`
	WriteErrors     int64          `json:"write_errors"`
	FirstError      []string       `json:"first_errors,omitempty"`
}

func (r *CompactResult) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "compact revisions=%d keys=%d fill=%.1fs (%.0f/s", r.Revisions, r.Keys, r.FillSec, r.FillPerSec)
	if r.FillServerCPUus != nil {
		fmt.Fprintf(&b, ", server_cpu=%.1fus/put", *r.FillServerCPUus)
	}
	fmt.Fprintf(&b, ") compact@%d=%.2fs defrag=%.2fs | puts at %.0f/s:", r.CompactRev, r.CompactSec, r.DefragSec, r.Rate)
	for _, p := range r.Phases {
		fmt.Fprintf(&b, " %s n=%d p50=%s p99=%s p99.9=%s max=%s;", p.Phase, p.Puts, fmtMs(p.P50Ms), fmtMs(p.P99Ms), fmtMs(p.P999Ms), fmtMs(p.MaxMs))
	}
	fmt.Fprintf(&b, " errors=%d", r.WriteErrors)
	return b.String()
}

type compactFlags struct {
	endpoints      string
	revisions      int
	keys           int
	keySize        int
	valSize        int
	clients        int
	conns          int
	rate           float64
	writers        int
	before, after  time.Duration
	fillDuration   time.Duration
	timeout        time.Duration
	compactTimeout time.Duration
	serverPID      int
	jsonOut        bool
	progress       bool
}

const compactHelp = `Fills the store with --revisions puts over --keys keys, then puts at
--rate per second while the store is compacted at the fill's last revision
(physically) and defragmented; prints the puts' latency in each phase
(before, compact, defrag, after), the compaction's and the defragmentation's
time, and with --server-pid the server's CPU per put of the fill.
`

func runCompact(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("detcd-bench compact", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf compactFlags
	fs.StringVar(&cf.endpoints, "endpoints", "127.0.0.1:2379", "comma-separated client endpoints (host:port or http://host:port)")
	fs.IntVar(&cf.revisions, "revisions", 1_000_000, "puts of the fill: the revisions to compact")
	fs.IntVar(&cf.keys, "keys", 100_000, "keys the fill spreads its puts over (put i writes key i mod keys)")
	fs.IntVar(&cf.keySize, "key-size", 16, "key size in bytes")
	fs.IntVar(&cf.valSize, "val-size", 256, "value size in bytes")
	fs.IntVar(&cf.clients, "clients", 256, "concurrent clients of the fill")
	fs.IntVar(&cf.conns, "conns", 16, "gRPC connections")
	fs.Float64Var(&cf.rate, "rate", 1000, "puts/s during the compaction and defragmentation")
	fs.IntVar(&cf.writers, "writers", 16, "concurrent writers (one put in flight each) sharing --rate")
	fs.DurationVar(&cf.before, "before", 5*time.Second, "time the rate load runs before the compaction")
	fs.DurationVar(&cf.after, "after", 5*time.Second, "time the rate load runs after the defragmentation")
	fs.DurationVar(&cf.fillDuration, "fill-duration", 10*time.Minute, "time limit of the fill")
	fs.DurationVar(&cf.timeout, "timeout", 10*time.Second, "timeout of one put")
	fs.DurationVar(&cf.compactTimeout, "compact-timeout", 5*time.Minute, "timeout of the compaction and of the defragmentation")
	fs.IntVar(&cf.serverPID, "server-pid", 0, "if set, also report this local server process's CPU per put of the fill")
	fs.BoolVar(&cf.jsonOut, "json", false, "print the summary as one JSON object instead of a text line")
	fs.BoolVar(&cf.progress, "progress", true, "print a progress line to stderr every second")
	if code, ok := parseFlags(fs, "compact", compactHelp, args, stderr); !ok {
		return code
	}
	switch {
	case cf.revisions < 1 || cf.keys < 1 || cf.clients < 1 || cf.conns < 1 || cf.writers < 1 || cf.keySize < 1 || cf.valSize < 0:
		fmt.Fprintf(stderr, "detcd-bench compact: --revisions, --keys, --clients, --conns, --writers and --key-size must be positive\n")
		return 2
	case cf.rate <= 0 || cf.before < 0 || cf.after < 0 || cf.fillDuration <= 0 || cf.timeout <= 0 || cf.compactTimeout <= 0:
		fmt.Fprintf(stderr, "detcd-bench compact: --rate and the durations must be positive\n")
		return 2
	}
	if err := checkKeySpace(cf.keySize, int64(cf.keys)); err != nil {
		fmt.Fprintf(stderr, "detcd-bench compact: %v\n", err)
		return 2
	}
	eps := parseEndpoints(cf.endpoints)
	if len(eps) == 0 {
		fmt.Fprintf(stderr, "detcd-bench compact: no --endpoints\n")
		return 2
	}
	clis, err := dial(eps, cf.conns, "")
	if err != nil {
		fmt.Fprintf(stderr, "detcd-bench compact: %v\n", err)
		return 1
	}
	defer closeAll(clis)
	tuneGC()
	r, err := compactRun(clis, eps[0], &cf, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "detcd-bench compact: %v\n", err)
		return 1
	}
	report(stdout, stderr, cf.jsonOut, r, r.FirstError)
	if r.WriteErrors > 0 {
		return 3
	}
	return 0
}

func compactRun(clis []*clientv3.Client, endpoint string, cf *compactFlags, progress io.Writer) (*CompactResult, error) {
	r := &CompactResult{Op: "compact", Revisions: cf.revisions, Keys: cf.keys, Rate: cf.rate}
	val := makeValue(cf.valSize)
	cpu0, cpuErr := procCPU(cf.serverPID)
	t0 := time.Now()
	rev, err := compactFill(clis, cf, val, progress)
	if err != nil {
		return nil, err
	}
	r.FillSec = time.Since(t0).Seconds()
	r.FillPerSec = float64(cf.revisions) / r.FillSec
	if cpu1, err := procCPU(cf.serverPID); err == nil && cpuErr == nil {
		us := float64((cpu1 - cpu0).Microseconds()) / float64(cf.revisions)
		r.FillServerCPUus = &us
	}
	r.CompactRev = rev

	var (
		phase  atomic.Int32
		hists  = make([]hist, len(compactPhases))
		errs   errCollector
		failed atomic.Int64
	)
	stopWriters := rateWriters(clis, cf, val, func(d time.Duration, err error, sentIn int32) {
		if err != nil {
			failed.Add(1)
			errs.add("put: " + err.Error())
			return
		}
		hists[sentIn].add(d)
	}, &phase)
	stop := progressLoop(cf.progress, progress, func(sec float64) string {
		return fmt.Sprintf("[compact] %5.1fs %s: %d puts, %d errors", sec, compactPhases[phase.Load()], hists[phase.Load()].count(), failed.Load())
	})
	time.Sleep(cf.before)
	var opErr error
	timed := func(next int32, op func(ctx context.Context) error) float64 {
		phase.Store(next)
		ctx, cancel := context.WithTimeout(context.Background(), cf.compactTimeout)
		defer cancel()
		t := time.Now()
		if err := op(ctx); err != nil && opErr == nil {
			opErr = fmt.Errorf("%s: %w", compactPhases[next], err)
		}
		return time.Since(t).Seconds()
	}
	r.CompactSec = timed(1, func(ctx context.Context) error {
		_, err := clis[0].Compact(ctx, rev, clientv3.WithCompactPhysical())
		return err
	})
	r.DefragSec = timed(2, func(ctx context.Context) error {
		_, err := clis[0].Defragment(ctx, endpoint)
		return err
	})
	phase.Store(3)
	time.Sleep(cf.after)
	stopWriters()
	stop()
	if opErr != nil {
		return nil, opErr
	}
	for i, name := range compactPhases {
		h := &hists[i]
		r.Phases = append(r.Phases, PhaseLatency{Phase: name, Puts: h.count(), P50Ms: h.pct(50), P99Ms: h.pct(99), P999Ms: h.pct(99.9), MaxMs: h.maxMs()})
	}
	r.WriteErrors = failed.Load()
	r.FirstError = errs.list()
	return r, nil
}

// compactFill writes the fill and returns the store's revision after it.
func compactFill(clis []*clientv3.Client, cf *compactFlags, val string, progress io.Writer) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cf.fillDuration)
	defer cancel()
	var (
		next, done atomic.Int64
		errs       errCollector
		wg         sync.WaitGroup
	)
	stop := progressLoop(cf.progress, progress, func(sec float64) string {
		return fmt.Sprintf("[compact] fill %5.1fs: %d/%d puts", sec, done.Load(), cf.revisions)
	})
	for c := range cf.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cli := clis[c%len(clis)]
			for i := next.Add(1) - 1; i < int64(cf.revisions) && ctx.Err() == nil; i = next.Add(1) - 1 {
				rctx, rcancel := context.WithTimeout(ctx, cf.timeout)
				_, err := cli.Put(rctx, fixedKey(i%int64(cf.keys), cf.keySize), val)
				rcancel()
				if err != nil {
					errs.add(err.Error())
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	stop()
	if n := done.Load(); n < int64(cf.revisions) {
		return 0, fmt.Errorf("fill: %d of %d puts done (%v)", n, cf.revisions, errs.list())
	}
	ctx, cancel = context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	resp, err := clis[0].Get(ctx, fixedKey(0, cf.keySize), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("revision after the fill: %w", err)
	}
	return resp.Header.Revision, nil
}

// rateWriters starts cf.writers writers sharing a schedule of cf.rate puts
// a second over the fill's keys; each put's latency, or error, goes to
// record with the phase it was sent in. The returned func stops them.
func rateWriters(clis []*clientv3.Client, cf *compactFlags, val string, record func(time.Duration, error, int32), phase *atomic.Int32) func() {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	w0 := time.Now()
	for w := range cf.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cli := clis[w%len(clis)]
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				at := w0.Add(time.Duration(float64(i) / cf.rate * float64(time.Second)))
				if d := time.Until(at); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return
					}
				}
				sentIn := phase.Load()
				rctx, rcancel := context.WithTimeout(ctx, cf.timeout)
				t := time.Now()
				_, err := cli.Put(rctx, fixedKey(i%int64(cf.keys), cf.keySize), val)
				d := time.Since(t)
				rcancel()
				if ctx.Err() != nil {
					return
				}
				record(d, err, sentIn)
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}
