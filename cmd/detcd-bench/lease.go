package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const leaseHelp = `Two phases (--phases), each with its own summary line:

keepalive  grants --leases leases (TTL --ka-ttl s; timed, reported as
           grants/s), then sends keep-alives for all of them over --streams
           raw LeaseKeepAlive bidirectional streams (stream k renews leases
           k, k+streams, ...), pipelined with up to --window requests in
           flight per stream, until --ka-total keep-alives or --ka-duration.
           Reports keep-alives/s and their latency (request sent to response
           received); a response with TTL <= 0 (lease not found) is an error.
           The leases are revoked afterwards (not timed).

expiry     grants --leases leases with TTL --ttl s and attaches one key to
           each (a background keep-alive sweep keeps the early ones alive
           while the rest are set up), renews them all in one pipelined
           sweep, then stops renewing. The deadline is the end of that
           sweep + the TTL: every lease is due by then (so the first key
           may go before it, by up to the sweep's time). A count-only range
           of the keys' prefix every --poll measures when the first key
           goes and when the last one does, relative to the deadline, and
           the expiry rate (etcd revokes at most 1000 leases/s). Meanwhile
           --writers writers put at --write-rate puts/s; their latency is
           reported for the storm (from the last poll that saw every key to
           the first that saw none) and, for contrast, for the quiet time
           before the first lease is due. With --server-pid, the server's
           CPU (in cores) in both windows.`

// KeepAliveResult is the summary of the keep-alive phase.
type KeepAliveResult struct {
	Op           string   `json:"op"` // "lease-keepalive"
	Leases       int      `json:"leases"`
	Streams      int      `json:"streams"`
	Window       int      `json:"window"`
	Conns        int      `json:"conns"`
	GrantSec     float64  `json:"grant_s"`
	GrantsPerSec float64  `json:"grants_per_s"`
	KeepAlives   int64    `json:"keepalives"` // answered with TTL > 0
	Errors       int64    `json:"errors"`
	Seconds      float64  `json:"seconds"`
	PerSec       float64  `json:"keepalives_per_s"`
	P50Ms        float64  `json:"p50_ms"`
	P90Ms        float64  `json:"p90_ms"`
	P99Ms        float64  `json:"p99_ms"`
	MaxMs        float64  `json:"max_ms"`
	ClientCPUus  float64  `json:"client_cpu_us_per_keepalive"`
	ServerCPUus  *float64 `json:"server_cpu_us_per_keepalive,omitempty"`
	OtherCores   *float64 `json:"other_cpu_cores,omitempty"`
	StoppedBy    string   `json:"stopped_by"`
	FirstError   []string `json:"first_errors,omitempty"`
}

func (r *KeepAliveResult) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lease-keepalive leases=%d keepalives=%d seconds=%.2f keepalives/s=%.0f p50=%s p90=%s p99=%s max=%s errors=%d client_cpu=%.1fus/ka",
		r.Leases, r.KeepAlives, r.Seconds, r.PerSec, fmtMs(r.P50Ms), fmtMs(r.P90Ms), fmtMs(r.P99Ms), fmtMs(r.MaxMs), r.Errors, r.ClientCPUus)
	if r.ServerCPUus != nil {
		fmt.Fprintf(&b, " server_cpu=%.1fus/ka", *r.ServerCPUus)
	}
	if r.OtherCores != nil {
		fmt.Fprintf(&b, " other_cpu=%.2fcores", *r.OtherCores)
	}
	fmt.Fprintf(&b, " grants/s=%.0f streams=%d window=%d conns=%d stopped_by=%s", r.GrantsPerSec, r.Streams, r.Window, r.Conns, r.StoppedBy)
	return b.String()
}

// ExpiryResult is the summary of the mass-expiry phase. Times are seconds
// relative to the deadline (the end of the last renewal sweep + TTL).
type ExpiryResult struct {
	Op            string  `json:"op"` // "lease-expiry"
	Leases        int     `json:"leases"`
	TTLSec        int64   `json:"ttl_s"` // as granted
	SetupSec      float64 `json:"setup_s"`
	SweepSec      float64 `json:"sweep_s"`          // the last renewal of all leases
	FirstGoneSec  float64 `json:"first_gone_s"`     // first poll that saw a key gone, after the deadline
	AllGoneSec    float64 `json:"all_gone_s"`       // first poll that saw no key, after the deadline
	StormSec      float64 `json:"storm_s"`          // last poll with every key to first with none
	RevokesPerSec float64 `json:"expired_per_s"`    // leases / storm_s
	Remaining     int64   `json:"remaining_keys"`   // at the end (0 unless timed out)
	ExpiredEarly  int64   `json:"expired_in_setup"` // leases not found by the final sweep
	PollErrors    int64   `json:"poll_errors"`

	WriteRate      float64  `json:"write_rate"`
	Writers        int      `json:"writers"`
	StormWrites    int64    `json:"storm_writes"`
	StormP50Ms     float64  `json:"storm_p50_ms"`
	StormP99Ms     float64  `json:"storm_p99_ms"`
	StormMaxMs     float64  `json:"storm_max_ms"`
	BaseWrites     int64    `json:"base_writes"`
	BaseP50Ms      float64  `json:"base_p50_ms"`
	BaseP99Ms      float64  `json:"base_p99_ms"`
	BaseMaxMs      float64  `json:"base_max_ms"`
	WriteErrors    int64    `json:"write_errors"`
	StormSrvCores  *float64 `json:"storm_server_cpu_cores,omitempty"`
	BaseSrvCores   *float64 `json:"base_server_cpu_cores,omitempty"`
	StoppedBy      string   `json:"stopped_by"` // "all-gone" or "timeout"
	FirstError     []string `json:"first_errors,omitempty"`
	ExpiryTimeline []int64  `json:"keys_left_each_second,omitempty"`
}

func (r *ExpiryResult) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lease-expiry leases=%d ttl=%ds first_gone=%+.2fs all_gone=%+.2fs (after the deadline) storm=%.2fs expired/s=%.0f remaining=%d expired_in_setup=%d",
		r.Leases, r.TTLSec, r.FirstGoneSec, r.AllGoneSec, r.StormSec, r.RevokesPerSec, r.Remaining, r.ExpiredEarly)
	fmt.Fprintf(&b, " | puts at %.0f/s: storm n=%d p50=%s p99=%s max=%s; before n=%d p50=%s p99=%s max=%s; errors=%d",
		r.WriteRate, r.StormWrites, fmtMs(r.StormP50Ms), fmtMs(r.StormP99Ms), fmtMs(r.StormMaxMs),
		r.BaseWrites, fmtMs(r.BaseP50Ms), fmtMs(r.BaseP99Ms), fmtMs(r.BaseMaxMs), r.WriteErrors)
	if r.StormSrvCores != nil && r.BaseSrvCores != nil {
		fmt.Fprintf(&b, " | server_cpu storm=%.2fcores before=%.2fcores", *r.StormSrvCores, *r.BaseSrvCores)
	}
	fmt.Fprintf(&b, " | setup=%.1fs sweep=%.2fs poll_errors=%d stopped_by=%s", r.SetupSec, r.SweepSec, r.PollErrors, r.StoppedBy)
	return b.String()
}

type leaseFlags struct {
	endpoints     string
	phases        string
	leases        int
	conns         int
	clients       int
	streams       int
	window        int
	kaTotal       int
	kaDuration    time.Duration
	kaTTL         int64
	ttl           int64
	writeRate     float64
	writers       int
	valSize       int
	expiryTimeout time.Duration
	poll          time.Duration
	timeout       time.Duration
	serverPID     int
	jsonOut       bool
	progress      bool
	cpuProf       string
}

func runLease(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("detcd-bench lease", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lf leaseFlags
	fs.StringVar(&lf.endpoints, "endpoints", "127.0.0.1:2379", "comma-separated client endpoints (host:port or http://host:port)")
	fs.StringVar(&lf.phases, "phases", "keepalive,expiry", "phases to run, in this order: keepalive, expiry or both")
	fs.IntVar(&lf.leases, "leases", 10_000, "leases granted in each phase")
	fs.IntVar(&lf.conns, "conns", 4, "gRPC connections (keep-alive streams, grants and puts are spread over them)")
	fs.IntVar(&lf.clients, "clients", 64, "concurrent clients granting (and attaching keys, revoking) in the setup")
	fs.IntVar(&lf.streams, "streams", 8, "keep-alive streams")
	fs.IntVar(&lf.window, "window", 32, "keep-alive requests in flight per stream (at most the stream's leases)")
	fs.IntVar(&lf.kaTotal, "ka-total", 2_000_000, "keep-alives to send; the keepalive phase stops at this count or at --ka-duration")
	fs.DurationVar(&lf.kaDuration, "ka-duration", 10*time.Second, "time limit of the keep-alive load")
	fs.Int64Var(&lf.kaTTL, "ka-ttl", 60, "TTL in seconds of the keepalive phase's leases")
	fs.Int64Var(&lf.ttl, "ttl", 5, "TTL in seconds of the expiry phase's leases (the server may raise it to its minimum)")
	fs.Float64Var(&lf.writeRate, "write-rate", 500, "puts/s of the writer during the expiry phase")
	fs.IntVar(&lf.writers, "writers", 16, "concurrent writers (one put in flight each) sharing --write-rate")
	fs.IntVar(&lf.valSize, "val-size", 256, "value size of the writer's puts and the leased keys")
	fs.DurationVar(&lf.expiryTimeout, "expiry-timeout", time.Minute, "give up waiting for the keys to go this long after the deadline")
	fs.DurationVar(&lf.poll, "poll", 50*time.Millisecond, "interval of the count-only range during the expiry phase")
	fs.DurationVar(&lf.timeout, "timeout", 10*time.Second, "timeout of one request")
	fs.IntVar(&lf.serverPID, "server-pid", 0, "if set, also report this local server process's CPU (from /proc/PID/stat)")
	fs.BoolVar(&lf.jsonOut, "json", false, "print each summary as one JSON object (one line per phase) instead of a text line")
	fs.StringVar(&lf.cpuProf, "cpuprofile", "", "write this tool's CPU profile of the run to this file")
	fs.BoolVar(&lf.progress, "progress", true, "print a progress line to stderr every second")
	if code, ok := parseFlags(fs, "lease", leaseHelp, args, stderr); !ok {
		return code
	}
	var phases []string
	for _, p := range strings.Split(lf.phases, ",") {
		switch p = strings.TrimSpace(p); p {
		case "keepalive", "expiry":
			phases = append(phases, p)
		case "":
		default:
			fmt.Fprintf(stderr, "detcd-bench lease: unknown phase %q (keepalive, expiry)\n", p)
			return 2
		}
	}
	switch {
	case len(phases) == 0:
		fmt.Fprintf(stderr, "detcd-bench lease: no --phases\n")
		return 2
	case lf.leases < 1 || lf.conns < 1 || lf.clients < 1 || lf.streams < 1 || lf.window < 1 || lf.kaTotal < 1 || lf.writers < 1:
		fmt.Fprintf(stderr, "detcd-bench lease: --leases, --conns, --clients, --streams, --window, --ka-total and --writers must be positive\n")
		return 2
	case lf.kaDuration <= 0 || lf.kaTTL < 1 || lf.ttl < 1 || lf.writeRate <= 0 || lf.expiryTimeout <= 0 || lf.poll <= 0 || lf.timeout <= 0 || lf.valSize < 0:
		fmt.Fprintf(stderr, "detcd-bench lease: durations, TTLs and --write-rate must be positive\n")
		return 2
	}
	eps := parseEndpoints(lf.endpoints)
	if len(eps) == 0 {
		fmt.Fprintf(stderr, "detcd-bench lease: no --endpoints\n")
		return 2
	}
	clis, err := dial(eps, lf.conns, "")
	if err != nil {
		fmt.Fprintf(stderr, "detcd-bench lease: %v\n", err)
		return 1
	}
	defer closeAll(clis)
	tuneGC()
	stopProf, err := startProfile(lf.cpuProf)
	if err != nil {
		fmt.Fprintf(stderr, "detcd-bench lease: %v\n", err)
		return 1
	}
	defer stopProf()

	status := 0
	for _, p := range phases {
		switch p {
		case "keepalive":
			r, err := keepAlivePhase(clis, &lf, stderr)
			if err != nil {
				fmt.Fprintf(stderr, "detcd-bench lease: keepalive: %v\n", err)
				return 1
			}
			report(stdout, stderr, lf.jsonOut, r, r.FirstError)
			if r.Errors > 0 {
				status = 3
			}
		case "expiry":
			r, err := expiryPhase(clis, &lf, stderr)
			if err != nil {
				fmt.Fprintf(stderr, "detcd-bench lease: expiry: %v\n", err)
				return 1
			}
			report(stdout, stderr, lf.jsonOut, r, r.FirstError)
			if r.Remaining > 0 || r.WriteErrors > 0 || r.ExpiredEarly > 0 || r.PollErrors > 0 {
				status = 3
			}
		}
	}
	return status
}

// kaCounters are the keep-alive engine's live counters.
type kaCounters struct {
	sent, done, failed atomic.Int64
	errs               errCollector
}

// keepAlive sends keep-alives for ids over streams raw LeaseKeepAlive
// streams (stream k renews ids k, k+streams, ... in turn), at most window
// in flight per stream, until total are sent or sendCtx ends, then waits
// up to timeout for the responses owed. total 0 is a sweep: every lease
// renewed exactly once. It returns each answered keep-alive's latency.
func keepAlive(sendCtx context.Context, clis []*clientv3.Client, ids []int64, streams, window int, total int64,
	timeout time.Duration, c *kaCounters) []time.Duration {
	streams = min(streams, len(ids))
	lats := make([][]time.Duration, streams)
	var wg sync.WaitGroup
	for k := range streams {
		var my []int64
		for i := k; i < len(ids); i += streams {
			my = append(my, ids[i])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lats[k] = keepAliveStream(sendCtx, clis[k%len(clis)], my, min(window, len(my)), total, timeout, c)
		}()
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return all
}

func keepAliveStream(sendCtx context.Context, cli *clientv3.Client, my []int64, window int, total int64,
	timeout time.Duration, c *kaCounters) []time.Duration {
	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	st, err := pb.NewLeaseClient(cli.ActiveConnection()).LeaseKeepAlive(sctx)
	if err != nil {
		c.failed.Add(1)
		c.errs.add("opening a LeaseKeepAlive stream: " + err.Error())
		return nil
	}
	var (
		mu       sync.Mutex
		pending  = map[int64][]time.Time{}
		sem      = make(chan struct{}, window)
		lats     []time.Duration
		recvDone = make(chan struct{})
		closing  atomic.Bool
	)
	go func() {
		defer close(recvDone)
		for {
			resp, err := st.Recv()
			now := time.Now()
			if err != nil {
				if !errors.Is(err, io.EOF) && !closing.Load() {
					c.failed.Add(1)
					c.errs.add("LeaseKeepAlive stream: " + err.Error())
				}
				return
			}
			mu.Lock()
			q := pending[resp.ID]
			var t0 time.Time
			if len(q) > 0 {
				t0 = q[0]
				if len(q) == 1 {
					delete(pending, resp.ID)
				} else {
					pending[resp.ID] = q[1:]
				}
			}
			mu.Unlock()
			if t0.IsZero() {
				c.failed.Add(1)
				c.errs.add(fmt.Sprintf("keep-alive response for lease %x, which has none in flight", resp.ID))
				continue
			}
			lats = append(lats, now.Sub(t0))
			if resp.TTL <= 0 {
				c.failed.Add(1)
				c.errs.add(fmt.Sprintf("keep-alive of lease %x: TTL %d (lease not found)", resp.ID, resp.TTL))
			} else {
				c.done.Add(1)
			}
			<-sem
		}
	}()
send:
	for n := 0; ; n++ {
		select {
		case sem <- struct{}{}:
		case <-sendCtx.Done():
			break send
		case <-recvDone:
			break send
		}
		if total == 0 && n >= len(my) {
			break // a sweep: each lease once
		}
		if c.sent.Add(1) > total && total > 0 || sendCtx.Err() != nil {
			break
		}
		id := my[n%len(my)]
		mu.Lock()
		pending[id] = append(pending[id], time.Now())
		mu.Unlock()
		if err := st.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
			c.failed.Add(1)
			c.errs.add("LeaseKeepAlive send: " + err.Error())
			break
		}
	}
	st.CloseSend()
	select {
	case <-recvDone:
	case <-time.After(timeout):
		mu.Lock()
		owed := 0
		for _, q := range pending {
			owed += len(q)
		}
		mu.Unlock()
		c.failed.Add(int64(owed))
		c.errs.add(fmt.Sprintf("%d keep-alive responses still owed %v after the last request", owed, timeout))
		closing.Store(true)
		scancel()
		<-recvDone
	}
	return lats
}

// progressLoop calls line every second until the returned stop is called.
func progressLoop(on bool, w io.Writer, line func(sec float64) string) (stop func()) {
	if !on || w == nil {
		return func() {}
	}
	start := time.Now()
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				fmt.Fprintln(w, line(now.Sub(start).Seconds()))
			}
		}
	}()
	return func() { close(quit); <-done }
}

func (lf *leaseFlags) setupFlags(duration time.Duration) *loadFlags {
	return &loadFlags{clients: lf.clients, conns: lf.conns, duration: duration, timeout: lf.timeout, progress: lf.progress}
}

// grantLeases grants lf.leases leases of ttl seconds from lf.clients
// clients; with attach, it also puts key prefix+N under lease N. It
// returns the ids and the TTL granted.
func grantLeases(clis []*clientv3.Client, lf *leaseFlags, name string, ttl int64, attach string, ids []atomic.Int64,
	progress io.Writer) (*Result, int64, error) {
	var granted atomic.Int64
	val := makeValue(lf.valSize)
	op := func(ctx context.Context, cli *clientv3.Client, w int, i int64) error {
		resp, err := cli.Grant(ctx, ttl)
		if err != nil {
			return fmt.Errorf("grant: %w", err)
		}
		ids[i].Store(int64(resp.ID))
		granted.Store(resp.TTL)
		if attach != "" {
			if _, err := cli.Put(ctx, attach+fixedKey(i, 8), val, clientv3.WithLease(resp.ID)); err != nil {
				return fmt.Errorf("put with lease %x: %w", resp.ID, err)
			}
		}
		return nil
	}
	res := runLoad(name, clis, lf.setupFlags(5*time.Minute), int64(lf.leases), op, progress)
	if res.Errors > 0 || res.Requests != int64(lf.leases) {
		return res, 0, fmt.Errorf("%s: %d of %d done, %d errors: %v", name, res.Requests, lf.leases, res.Errors, res.FirstError)
	}
	return res, granted.Load(), nil
}

func loadIDs(ids []atomic.Int64) []int64 {
	var out []int64
	for i := range ids {
		if v := ids[i].Load(); v != 0 {
			out = append(out, v)
		}
	}
	return out
}

func keepAlivePhase(clis []*clientv3.Client, lf *leaseFlags, progress io.Writer) (*KeepAliveResult, error) {
	aids := make([]atomic.Int64, lf.leases)
	g, _, err := grantLeases(clis, lf, "lease-grant", lf.kaTTL, "", aids, progress)
	if err != nil {
		return nil, err
	}
	ids := loadIDs(aids)
	defer revokeLeases(clis, lf, ids, progress)

	var c kaCounters
	ctx, cancel := context.WithTimeout(context.Background(), lf.kaDuration)
	defer cancel()
	var last int64
	stop := progressLoop(lf.progress, progress, func(sec float64) string {
		d := c.done.Load()
		s := fmt.Sprintf("[lease-keepalive] %4.0fs %d/%d done, %d keep-alives/s in the last second, %d errors", sec, d, lf.kaTotal, d-last, c.failed.Load())
		last = d
		return s
	})
	srvCPU0, srvErr0 := procCPU(lf.serverPID)
	busy0, busyErr0 := machineBusy()
	cpu0 := cpuSelf()
	start := time.Now()
	lats := keepAlive(ctx, clis, ids, lf.streams, lf.window, int64(lf.kaTotal), lf.timeout, &c)
	elapsed := time.Since(start)
	cpu := cpuSelf() - cpu0
	srvCPU1, srvErr1 := procCPU(lf.serverPID)
	busy1, busyErr1 := machineBusy()
	stop()
	stoppedBy := "total"
	if ctx.Err() != nil && c.sent.Load() <= int64(lf.kaTotal) {
		stoppedBy = "duration"
	}
	slices.Sort(lats)
	r := &KeepAliveResult{
		Op: "lease-keepalive", Leases: len(ids), Streams: min(lf.streams, len(ids)), Window: lf.window, Conns: len(clis),
		GrantSec: g.Seconds, GrantsPerSec: g.RPS,
		KeepAlives: c.done.Load(), Errors: c.failed.Load(), Seconds: elapsed.Seconds(),
		StoppedBy: stoppedBy, FirstError: c.errs.list(),
	}
	r.PerSec = float64(r.KeepAlives) / r.Seconds
	r.P50Ms, r.P90Ms, r.P99Ms = pct(lats, 50), pct(lats, 90), pct(lats, 99)
	if len(lats) > 0 {
		r.MaxMs = ms(lats[len(lats)-1])
	}
	if busyErr0 == nil && busyErr1 == nil {
		other := busy1 - busy0 - cpu
		if lf.serverPID != 0 && srvErr0 == nil && srvErr1 == nil {
			other -= srvCPU1 - srvCPU0
		}
		v := max(0, other.Seconds()/elapsed.Seconds())
		r.OtherCores = &v
	}
	if r.KeepAlives > 0 {
		r.ClientCPUus = float64(cpu.Nanoseconds()) / 1000 / float64(r.KeepAlives)
		if lf.serverPID != 0 && srvErr0 == nil && srvErr1 == nil {
			v := float64((srvCPU1 - srvCPU0).Nanoseconds()) / 1000 / float64(r.KeepAlives)
			r.ServerCPUus = &v
		}
	}
	return r, nil
}

// revokeLeases revokes ids (not timed; errors are reported on progress).
func revokeLeases(clis []*clientv3.Client, lf *leaseFlags, ids []int64, progress io.Writer) {
	op := func(ctx context.Context, cli *clientv3.Client, w int, i int64) error {
		_, err := cli.Revoke(ctx, clientv3.LeaseID(ids[i]))
		return err
	}
	res := runLoad("lease-revoke", clis, lf.setupFlags(2*time.Minute), int64(len(ids)), op, progress)
	if res.Errors > 0 && progress != nil {
		fmt.Fprintf(progress, "detcd-bench lease: revoking the keepalive phase's leases: %d errors: %v\n", res.Errors, res.FirstError)
	}
}

// writeSample is one put of the expiry phase's writer.
type writeSample struct {
	at  time.Time
	lat time.Duration
}

// pollSample is one count of the leased keys.
type pollSample struct {
	at     time.Time
	count  int64
	srvCPU time.Duration
}

func expiryPhase(clis []*clientv3.Client, lf *leaseFlags, progress io.Writer) (*ExpiryResult, error) {
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	prefix := "detcd-bench/lease/" + nonce + "/"
	aids := make([]atomic.Int64, lf.leases)

	// Setup, with a background sweep every TTL/3 renewing the leases
	// granted so far, so that the first ones do not expire before the
	// last ones are granted.
	setupDone := make(chan struct{})
	keeperDone := make(chan struct{})
	var keeper kaCounters
	go func() {
		defer close(keeperDone)
		period := time.Duration(lf.ttl) * time.Second / 3
		for {
			select {
			case <-setupDone:
				return
			case <-time.After(period):
			}
			ids := loadIDs(aids)
			if len(ids) > 0 {
				keepAlive(context.Background(), clis, ids, 1, lf.window, 0, lf.timeout, &keeper)
			}
		}
	}()
	t0 := time.Now()
	_, ttl, err := grantLeases(clis, lf, "lease-setup", lf.ttl, prefix+"k", aids, progress)
	close(setupDone)
	<-keeperDone
	if err != nil {
		return nil, err
	}
	setupSec := time.Since(t0).Seconds()
	ids := loadIDs(aids)

	// The last renewal of every lease.
	var sweep kaCounters
	s0 := time.Now()
	keepAlive(context.Background(), clis, ids, lf.streams, lf.window, 0, lf.timeout, &sweep)
	s1 := time.Now()
	firstDue := s0.Add(time.Duration(ttl) * time.Second)
	deadline := s1.Add(time.Duration(ttl) * time.Second)
	r := &ExpiryResult{
		Op: "lease-expiry", Leases: len(ids), TTLSec: ttl, SetupSec: setupSec, SweepSec: s1.Sub(s0).Seconds(),
		ExpiredEarly: sweep.failed.Load(), WriteRate: lf.writeRate, Writers: lf.writers,
	}
	var errs errCollector
	for _, e := range sweep.errs.list() {
		errs.add("final sweep: " + e)
	}

	// Writer and poller until every key is gone (or the timeout).
	stopAt := deadline.Add(lf.expiryTimeout)
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	var (
		writeErrs atomic.Int64
		next      atomic.Int64
		samples   = make([][]writeSample, lf.writers)
		wg        sync.WaitGroup
	)
	val := makeValue(lf.valSize)
	w0 := time.Now()
	for w := range lf.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cli := clis[w%len(clis)]
			for wctx.Err() == nil {
				i := next.Add(1) - 1
				at := w0.Add(time.Duration(float64(i) / lf.writeRate * float64(time.Second)))
				if d := time.Until(at); d > 0 {
					select {
					case <-time.After(d):
					case <-wctx.Done():
						return
					}
				}
				rctx, rcancel := context.WithTimeout(wctx, lf.timeout)
				t := time.Now()
				_, err := cli.Put(rctx, prefix+"w/"+fixedKey(i%1000, 8), val)
				d := time.Since(t)
				rcancel()
				if err != nil {
					if wctx.Err() != nil {
						return
					}
					writeErrs.Add(1)
					errs.add("writer put: " + err.Error())
					continue
				}
				samples[w] = append(samples[w], writeSample{t, d})
			}
		}()
	}

	var (
		polls []pollSample
		left  atomic.Int64
	)
	left.Store(int64(len(ids)))
	stop := progressLoop(lf.progress, progress, func(sec float64) string {
		return fmt.Sprintf("[lease-expiry] %+5.1fs from the deadline: %d/%d leased keys left, %d puts, %d write errors",
			time.Since(deadline).Seconds(), left.Load(), len(ids), next.Load(), writeErrs.Load())
	})
	pollCli := clis[len(clis)-1]
	stoppedBy := "timeout"
	for time.Now().Before(stopAt) {
		ctx, cancel := context.WithTimeout(context.Background(), lf.timeout)
		resp, err := pollCli.Get(ctx, prefix+"k", clientv3.WithPrefix(), clientv3.WithCountOnly())
		cancel()
		now := time.Now()
		if err != nil {
			r.PollErrors++
			errs.add("count-only range: " + err.Error())
		} else {
			cpu, _ := procCPU(lf.serverPID)
			polls = append(polls, pollSample{now, resp.Count, cpu})
			left.Store(resp.Count)
			if resp.Count == 0 {
				stoppedBy = "all-gone"
				break
			}
		}
		time.Sleep(lf.poll)
	}
	wcancel()
	wg.Wait()
	stop()
	r.StoppedBy = stoppedBy
	r.WriteErrors = writeErrs.Load()

	// The storm: from the last poll that saw every key to the first that
	// saw none (or the last poll).
	if len(polls) == 0 {
		return nil, fmt.Errorf("no count-only range succeeded: %v", errs.list())
	}
	startIdx := -1
	for i, p := range polls {
		if p.count >= int64(len(ids)) {
			startIdx = i
		}
	}
	var stormStart pollSample
	if startIdx >= 0 {
		stormStart = polls[startIdx]
	} else {
		// Keys were already going at the first poll.
		stormStart = pollSample{at: s1, srvCPU: polls[0].srvCPU}
		errs.add("keys were already expiring at the first poll, right after the final sweep")
	}
	end := polls[len(polls)-1]
	r.Remaining = end.count
	if startIdx+1 < len(polls) {
		r.FirstGoneSec = polls[startIdx+1].at.Sub(deadline).Seconds()
	}
	r.AllGoneSec = end.at.Sub(deadline).Seconds()
	r.StormSec = end.at.Sub(stormStart.at).Seconds()
	if r.StormSec > 0 {
		r.RevokesPerSec = float64(int64(len(ids))-end.count) / r.StormSec
	}
	for i := 0; i < len(polls); i++ {
		if sec := int(polls[i].at.Sub(deadline).Seconds()); sec >= 0 && sec >= len(r.ExpiryTimeline) {
			for len(r.ExpiryTimeline) <= sec {
				r.ExpiryTimeline = append(r.ExpiryTimeline, polls[i].count)
			}
		}
	}
	var storm, base []time.Duration
	for _, ss := range samples {
		for _, s := range ss {
			switch {
			case !s.at.Before(stormStart.at) && !s.at.After(end.at):
				storm = append(storm, s.lat)
			case s.at.Before(firstDue):
				base = append(base, s.lat)
			}
		}
	}
	slices.Sort(storm)
	slices.Sort(base)
	r.StormWrites, r.BaseWrites = int64(len(storm)), int64(len(base))
	r.StormP50Ms, r.StormP99Ms = pct(storm, 50), pct(storm, 99)
	r.BaseP50Ms, r.BaseP99Ms = pct(base, 50), pct(base, 99)
	if len(storm) > 0 {
		r.StormMaxMs = ms(storm[len(storm)-1])
	}
	if len(base) > 0 {
		r.BaseMaxMs = ms(base[len(base)-1])
	}
	if lf.serverPID != 0 {
		// Before: from the first poll to the last one before the first
		// lease is due.
		var b0, b1 *pollSample
		for i := range polls {
			if polls[i].at.Before(firstDue) {
				if b0 == nil {
					b0 = &polls[i]
				}
				b1 = &polls[i]
			}
		}
		if d := end.at.Sub(stormStart.at); d > 0 && stormStart.srvCPU > 0 {
			v := (end.srvCPU - stormStart.srvCPU).Seconds() / d.Seconds()
			r.StormSrvCores = &v
		}
		if b0 != nil && b1 != b0 {
			v := (b1.srvCPU - b0.srvCPU).Seconds() / b1.at.Sub(b0.at).Seconds()
			r.BaseSrvCores = &v
		}
	}
	r.FirstError = errs.list()
	if n := keeper.failed.Load(); n > 0 {
		r.FirstError = append(r.FirstError, fmt.Sprintf("setup keep-alive sweeps: %d errors: %v", n, keeper.errs.list()))
	}
	return r, nil
}
