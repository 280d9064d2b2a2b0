package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const watchHelp = `Sets up --watchers watchers spread over --streams gRPC watch streams (a
stream is one clientv3.Watcher and context; watcher j is on stream j mod
streams, stream s on connection s mod --conns), all on one key (or, with
--keys > 1, on one prefix), waits until every watch is created, then puts
--total events on the watched key(s) from --writers writers, at --rate
puts/s or as fast as they can, and waits up to --drain for the deliveries
still owed.

Each put's value carries its sequence number and its send time (the tool's
monotonic clock), so every delivered event's latency, from the put sent to
the event received by the watcher, is measured (a histogram: exact below
1 ms, within 1.6% above). Every watcher checks that it gets every put's
revision once, in order: missed (a successful put a watcher never got),
duplicate (a put delivered twice to one watcher) and out_of_order (a
revision not above the watcher's previous one) should all be 0.

--streams takes a comma-separated list: each shape is a separate run on a
fresh key, one summary line each (the default runs 1 stream and 100).

Reported per shape: events delivered/s over all watchers (from the first
put sent to the last event received), delivery latency p50/p90/p99/max,
puts/s and put latency, missed/duplicate/out-of-order events, watch
errors, the tool's CPU per delivered event and, with --server-pid, the
server's (sampled from the first put to the end of the drain).`

// WatchResult is the summary of one watch run (one shape).
type WatchResult struct {
	Op       string  `json:"op"` // "watch"
	Streams  int     `json:"streams"`
	Watchers int     `json:"watchers"`
	Conns    int     `json:"conns"`
	Keys     int     `json:"keys"`
	Writers  int     `json:"writers"`
	Rate     float64 `json:"target_puts_per_s"` // 0: as fast as possible
	SetupSec float64 `json:"setup_s"`           // creating every watch

	Puts       int64   `json:"puts"` // succeeded
	PutErrors  int64   `json:"put_errors"`
	PutSeconds float64 `json:"put_seconds"`
	PutsPerSec float64 `json:"puts_per_s"`
	PutP50Ms   float64 `json:"put_p50_ms"`
	PutP99Ms   float64 `json:"put_p99_ms"`

	Events       int64   `json:"events"`          // delivered, all watchers
	Responses    int64   `json:"responses"`       // watch responses carrying them
	Expected     int64   `json:"expected_events"` // successful puts x watchers
	Seconds      float64 `json:"seconds"`         // first put sent to last event received
	EventsPerSec float64 `json:"events_per_s"`
	P50Ms        float64 `json:"p50_ms"`
	P90Ms        float64 `json:"p90_ms"`
	P99Ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`

	Missed      int64 `json:"missed"`
	Duplicate   int64 `json:"duplicate"`
	OutOfOrder  int64 `json:"out_of_order"`
	Unexpected  int64 `json:"unexpected"` // events that are not one of this run's puts
	FailedPuts  int64 `json:"delivered_failed_puts"`
	WatchErrors int64 `json:"watch_errors"`

	ClientCPUus float64  `json:"client_cpu_us_per_event"`
	ServerCPUus *float64 `json:"server_cpu_us_per_event,omitempty"`
	OtherCores  *float64 `json:"other_cpu_cores,omitempty"`
	StoppedBy   string   `json:"stopped_by"` // "total", "duration"; "+drain-timeout" if deliveries were still owed
	FirstError  []string `json:"first_errors,omitempty"`
}

func (r *WatchResult) failed() bool {
	return r.Missed+r.Duplicate+r.OutOfOrder+r.Unexpected+r.PutErrors+r.WatchErrors > 0
}

func (r *WatchResult) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "watch   streams=%d watchers=%d events=%d/%d seconds=%.2f events/s=%.0f p50=%s p90=%s p99=%s max=%s",
		r.Streams, r.Watchers, r.Events, r.Expected, r.Seconds, r.EventsPerSec, fmtMs(r.P50Ms), fmtMs(r.P90Ms), fmtMs(r.P99Ms), fmtMs(r.MaxMs))
	rate := "max"
	if r.Rate > 0 {
		rate = fmt.Sprintf("%.0f", r.Rate)
	}
	if r.Responses > 0 {
		fmt.Fprintf(&b, " events/response=%.2f", float64(r.Events)/float64(r.Responses))
	}
	fmt.Fprintf(&b, " puts=%d puts/s=%.0f (target %s) put_p50=%s put_p99=%s put_errors=%d",
		r.Puts, r.PutsPerSec, rate, fmtMs(r.PutP50Ms), fmtMs(r.PutP99Ms), r.PutErrors)
	fmt.Fprintf(&b, " missed=%d duplicate=%d out_of_order=%d unexpected=%d watch_errors=%d",
		r.Missed, r.Duplicate, r.OutOfOrder, r.Unexpected, r.WatchErrors)
	if r.FailedPuts > 0 {
		fmt.Fprintf(&b, " delivered_failed_puts=%d", r.FailedPuts)
	}
	fmt.Fprintf(&b, " client_cpu=%.2fus/event", r.ClientCPUus)
	if r.ServerCPUus != nil {
		fmt.Fprintf(&b, " server_cpu=%.2fus/event", *r.ServerCPUus)
	}
	if r.OtherCores != nil {
		fmt.Fprintf(&b, " other_cpu=%.2fcores", *r.OtherCores)
	}
	fmt.Fprintf(&b, " conns=%d keys=%d writers=%d setup=%.2fs stopped_by=%s", r.Conns, r.Keys, r.Writers, r.SetupSec, r.StoppedBy)
	return b.String()
}

type watchFlags struct {
	endpoints string
	watchers  int
	streams   string
	conns     int
	keys      int
	total     int
	duration  time.Duration
	drain     time.Duration
	rate      float64
	writers   int
	valSize   int
	timeout   time.Duration
	serverPID int
	jsonOut   bool
	progress  bool
	cpuProf   string
}

// errCollector keeps the first few distinct error messages.
type errCollector struct {
	mu   sync.Mutex
	msgs []string
}

func (e *errCollector) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.msgs) < 5 && !slices.Contains(e.msgs, s) {
		e.msgs = append(e.msgs, s)
	}
}

func (e *errCollector) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.msgs)
}

func parseIntList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty list")
	}
	return out, nil
}

// startProfile starts a CPU profile of the tool if path is set; the
// returned func stops it.
func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func runWatch(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("detcd-bench watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var wf watchFlags
	fs.StringVar(&wf.endpoints, "endpoints", "127.0.0.1:2379", "comma-separated client endpoints (host:port or http://host:port)")
	fs.IntVar(&wf.watchers, "watchers", 1000, "watchers in all, spread over the streams")
	fs.StringVar(&wf.streams, "streams", "1,100", "gRPC watch streams the watchers are spread over; a comma-separated list runs each shape in turn")
	fs.IntVar(&wf.conns, "conns", 4, "gRPC connections the streams are spread over (at most one per stream)")
	fs.IntVar(&wf.keys, "keys", 1, "1: every watcher watches one key, every put writes it; N > 1: every watcher watches a prefix, put i writes key i mod N under it")
	fs.IntVar(&wf.total, "total", 2000, "puts (events per watcher); the put phase stops at this count or at --duration")
	fs.DurationVar(&wf.duration, "duration", 20*time.Second, "time limit of the put phase (puts in flight then finish)")
	fs.DurationVar(&wf.drain, "drain", 15*time.Second, "after the puts, how long to wait for the deliveries still owed")
	fs.Float64Var(&wf.rate, "rate", 0, "target puts/s over all writers (put i is sent at i/rate s, or late if no writer is free); 0: as fast as the writers can")
	fs.IntVar(&wf.writers, "writers", 1, "concurrent writers (one put in flight each)")
	fs.IntVar(&wf.valSize, "val-size", 64, "value size in bytes (at least 16: sequence number and send time)")
	fs.DurationVar(&wf.timeout, "timeout", 10*time.Second, "timeout of one put (creating all the watchers may take this or 30s, whichever is longer)")
	fs.IntVar(&wf.serverPID, "server-pid", 0, "if set, also report this local server process's CPU per delivered event (from /proc/PID/stat)")
	fs.BoolVar(&wf.jsonOut, "json", false, "print each summary as one JSON object (one line per shape) instead of a text line")
	fs.StringVar(&wf.cpuProf, "cpuprofile", "", "write this tool's CPU profile of the run to this file")
	fs.BoolVar(&wf.progress, "progress", true, "print a progress line to stderr every second")
	if code, ok := parseFlags(fs, "watch", watchHelp, args, stderr); !ok {
		return code
	}
	shapes, err := parseIntList(wf.streams)
	if err != nil {
		fmt.Fprintf(stderr, "detcd-bench watch: --streams: %v\n", err)
		return 2
	}
	switch {
	case wf.watchers < 1 || wf.conns < 1 || wf.keys < 1 || wf.total < 1 || wf.writers < 1:
		fmt.Fprintf(stderr, "detcd-bench watch: --watchers, --conns, --keys, --total and --writers must be positive\n")
		return 2
	case wf.duration <= 0 || wf.drain < 0 || wf.timeout <= 0 || wf.rate < 0:
		fmt.Fprintf(stderr, "detcd-bench watch: --duration and --timeout must be positive, --drain and --rate not negative\n")
		return 2
	case wf.valSize < 16:
		fmt.Fprintf(stderr, "detcd-bench watch: --val-size must be at least 16\n")
		return 2
	case int64(wf.watchers)*int64(wf.total) > 1<<31 || wf.total > 100_000_000:
		// Every watcher keeps a bit per put.
		fmt.Fprintf(stderr, "detcd-bench watch: --watchers x --total above %d or --total above 100,000,000: lower one\n", int64(1)<<31)
		return 2
	}
	eps := parseEndpoints(wf.endpoints)
	if len(eps) == 0 {
		fmt.Fprintf(stderr, "detcd-bench watch: no --endpoints\n")
		return 2
	}
	tuneGC()
	stopProf, err := startProfile(wf.cpuProf)
	if err != nil {
		fmt.Fprintf(stderr, "detcd-bench watch: %v\n", err)
		return 1
	}
	defer stopProf()

	status := 0
	for _, s := range shapes {
		res, err := watchRun(eps, &wf, s, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "detcd-bench watch: streams=%d: %v\n", s, err)
			return 1
		}
		report(stdout, stderr, wf.jsonOut, res, res.FirstError)
		if res.failed() {
			status = 3
		}
	}
	return status
}

// watcherState is one watcher's view of the run.
type watcherState struct {
	seen       []uint64 // bit per put sequence number
	lastRev    int64
	got        int64
	dup        int64
	outOfOrder int64
	unexpected int64
	lastRecv   time.Duration // since the tool's epoch
}

// epoch is the tool's monotonic time origin: put values carry time.Since(epoch).
var epoch = time.Now()

func watchRun(eps []string, wf *watchFlags, streams int, progress io.Writer) (*WatchResult, error) {
	name := fmt.Sprintf("watch %dx%d", streams, wf.watchers)
	conns := min(wf.conns, streams)
	clis, err := dial(eps, conns, "")
	if err != nil {
		return nil, err
	}
	defer closeAll(clis)
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	prefix := fmt.Sprintf("detcd-bench/watch/%s/s%d/", nonce, streams)
	keyOf := func(i int64) string {
		if wf.keys == 1 {
			return prefix + "k"
		}
		return prefix + fixedKey(i%int64(wf.keys), 8)
	}
	var wopts []clientv3.OpOption
	wkey := prefix + "k"
	if wf.keys > 1 {
		wkey = prefix
		wopts = append(wopts, clientv3.WithPrefix())
	}
	wopts = append(wopts, clientv3.WithCreatedNotify())

	// Watchers.
	total := int64(wf.total)
	words := (total + 63) / 64
	states := make([]watcherState, wf.watchers)
	var (
		delivered   atomic.Int64
		responses   atomic.Int64
		watchErrors atomic.Int64
		errs        errCollector
		h           hist
		created     sync.WaitGroup
		done        sync.WaitGroup
	)
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	ws := make([]clientv3.Watcher, streams)
	for s := range ws {
		ws[s] = clientv3.NewWatcher(clis[s%len(clis)])
	}
	defer func() {
		wcancel()
		for _, w := range ws {
			w.Close()
		}
		done.Wait()
	}()
	setup0 := time.Now()
	created.Add(wf.watchers)
	for j := range states {
		st := &states[j]
		st.seen = make([]uint64, words)
		done.Add(1)
		go func() {
			defer done.Done()
			isCreated := false
			defer func() {
				if !isCreated {
					created.Done()
				}
			}()
			ch := ws[j%streams].Watch(wctx, wkey, wopts...)
			for wr := range ch {
				if err := wr.Err(); err != nil {
					watchErrors.Add(1)
					errs.add(fmt.Sprintf("watcher %d: %v", j, err))
					if wr.Canceled {
						return
					}
					continue
				}
				if wr.Created {
					if !isCreated {
						isCreated = true
						created.Done()
					}
					continue
				}
				now := time.Since(epoch)
				if len(wr.Events) > 0 {
					responses.Add(1)
				}
				for _, ev := range wr.Events {
					v := ev.Kv.Value
					if ev.Type != mvccpb.PUT || len(v) < 16 || !strings.HasPrefix(string(ev.Kv.Key), prefix) {
						st.unexpected++
						continue
					}
					seq := int64(binary.BigEndian.Uint64(v))
					sent := time.Duration(binary.BigEndian.Uint64(v[8:]))
					if seq < 0 || seq >= total {
						st.unexpected++
						continue
					}
					h.add(now - sent)
					if rev := ev.Kv.ModRevision; rev <= st.lastRev {
						st.outOfOrder++
					} else {
						st.lastRev = rev
					}
					w, bit := seq/64, uint64(1)<<(seq%64)
					if st.seen[w]&bit != 0 {
						st.dup++
					} else {
						st.seen[w] |= bit
						st.got++
					}
					st.lastRecv = now
					delivered.Add(1)
				}
			}
		}()
	}
	createdCh := make(chan struct{})
	go func() { created.Wait(); close(createdCh) }()
	select {
	case <-createdCh:
	case <-time.After(max(wf.timeout, 30*time.Second)):
		return nil, fmt.Errorf("creating %d watchers on %d streams: not all created within %v (%v)",
			wf.watchers, streams, max(wf.timeout, 30*time.Second), errs.list())
	}
	setupSec := time.Since(setup0).Seconds()
	if n := watchErrors.Load(); n > 0 {
		return nil, fmt.Errorf("creating watchers: %d errors: %v", n, errs.list())
	}

	// Writers.
	ok := make([]bool, total) // put i succeeded
	var (
		next, puts, putErrs atomic.Int64
		putLats             = make([][]time.Duration, wf.writers)
		wg                  sync.WaitGroup
	)
	putCtx, putCancel := context.WithTimeout(context.Background(), wf.duration)
	defer putCancel()
	srvCPU0, srvErr0 := procCPU(wf.serverPID)
	busy0, busyErr0 := machineBusy()
	cpu0 := cpuSelf()
	start := time.Since(epoch)
	startWall := time.Now()

	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		if !wf.progress || progress == nil {
			return
		}
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var lastPuts, lastEv int64
		for {
			select {
			case <-stopProgress:
				return
			case now := <-t.C:
				p, e := puts.Load(), delivered.Load()
				fmt.Fprintf(progress, "[%s] %4.0fs puts %d/%d (%d/s), events %d (%d/s in the last second), %d owed, %d put errors\n",
					name, now.Sub(startWall).Seconds(), p, total, p-lastPuts, e, e-lastEv, p*int64(wf.watchers)-e, putErrs.Load())
				lastPuts, lastEv = p, e
			}
		}
	}()

	val := []byte(makeValue(wf.valSize))
	for w := range wf.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cli := clis[w%len(clis)]
			buf := slices.Clone(val)
			var lat []time.Duration
			defer func() { putLats[w] = lat }()
			for putCtx.Err() == nil {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				if wf.rate > 0 {
					at := startWall.Add(time.Duration(float64(i) / wf.rate * float64(time.Second)))
					if d := time.Until(at); d > 0 {
						select {
						case <-time.After(d):
						case <-putCtx.Done():
							return
						}
					}
				}
				t0 := time.Since(epoch)
				binary.BigEndian.PutUint64(buf, uint64(i))
				binary.BigEndian.PutUint64(buf[8:], uint64(t0))
				// A put in flight when the time limit passes finishes: its
				// events are owed like the others'.
				rctx, rcancel := context.WithTimeout(context.Background(), wf.timeout)
				_, err := cli.Put(rctx, keyOf(i), string(buf))
				rcancel()
				if err != nil {
					putErrs.Add(1)
					errs.add("put: " + err.Error())
					continue
				}
				lat = append(lat, time.Since(epoch)-t0)
				ok[i] = true
				puts.Add(1)
			}
		}()
	}
	wg.Wait()
	putEnd := time.Since(epoch)
	stoppedBy := "total"
	if putCtx.Err() != nil && next.Load() < total {
		stoppedBy = "duration"
	}
	putCancel()

	// Drain: wait until every watcher got every put. A put that failed may
	// have been applied or not: with failed puts, the drain waits for their
	// events too, so up to --drain.
	okPuts := puts.Load()
	expected := okPuts * int64(wf.watchers)
	target := (okPuts + putErrs.Load()) * int64(wf.watchers)
	drainEnd := time.Now().Add(wf.drain)
	for delivered.Load() < target && time.Now().Before(drainEnd) {
		time.Sleep(2 * time.Millisecond)
	}
	if delivered.Load() < expected {
		stoppedBy += "+drain-timeout"
	}
	end := time.Since(epoch)
	cpu := cpuSelf() - cpu0
	srvCPU1, srvErr1 := procCPU(wf.serverPID)
	busy1, busyErr1 := machineBusy()
	close(stopProgress)
	<-progressDone
	wcancel()
	for _, w := range ws {
		w.Close()
	}
	done.Wait()

	r := &WatchResult{
		Op: "watch", Streams: streams, Watchers: wf.watchers, Conns: len(clis), Keys: wf.keys,
		Writers: wf.writers, Rate: wf.rate, SetupSec: setupSec,
		Puts: okPuts, PutErrors: putErrs.Load(), PutSeconds: (putEnd - start).Seconds(),
		Events: delivered.Load(), Responses: responses.Load(), Expected: expected, WatchErrors: watchErrors.Load(),
		StoppedBy: stoppedBy,
	}
	r.PutsPerSec = float64(r.Puts) / r.PutSeconds
	var pl []time.Duration
	for _, l := range putLats {
		pl = append(pl, l...)
	}
	slices.Sort(pl)
	r.PutP50Ms, r.PutP99Ms = pct(pl, 50), pct(pl, 99)
	last := start
	for j := range states {
		st := &states[j]
		last = max(last, st.lastRecv)
		r.Duplicate += st.dup
		r.OutOfOrder += st.outOfOrder
		r.Unexpected += st.unexpected
		for i := range total {
			seen := st.seen[i/64]&(1<<(i%64)) != 0
			switch {
			case ok[i] && !seen:
				r.Missed++
			case !ok[i] && seen:
				r.FailedPuts++
			}
		}
	}
	r.Seconds = (last - start).Seconds()
	if r.Seconds > 0 {
		r.EventsPerSec = float64(r.Events) / r.Seconds
	}
	r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs = h.pct(50), h.pct(90), h.pct(99), h.maxMs()
	elapsed := end - start
	if busyErr0 == nil && busyErr1 == nil && elapsed > 0 {
		other := busy1 - busy0 - cpu
		if wf.serverPID != 0 && srvErr0 == nil && srvErr1 == nil {
			other -= srvCPU1 - srvCPU0
		}
		v := max(0, other.Seconds()/elapsed.Seconds())
		r.OtherCores = &v
	}
	if r.Events > 0 {
		r.ClientCPUus = float64(cpu.Nanoseconds()) / 1000 / float64(r.Events)
		if wf.serverPID != 0 && srvErr0 == nil && srvErr1 == nil {
			v := float64((srvCPU1 - srvCPU0).Nanoseconds()) / 1000 / float64(r.Events)
			r.ServerCPUus = &v
		}
	}
	r.FirstError = errs.list()
	return r, nil
}
