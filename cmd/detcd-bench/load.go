package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// loadFlags are the flags every load command shares.
type loadFlags struct {
	endpoints string
	clients   int
	conns     int
	total     int
	duration  time.Duration
	timeout   time.Duration
	keySize   int
	valSize   int
	serverPID pidList
	jsonOut   bool
	progress  bool
	cpuProf   string
	user      string
}

func (lf *loadFlags) register(fs *flag.FlagSet, total int, duration time.Duration) {
	fs.StringVar(&lf.endpoints, "endpoints", "127.0.0.1:2379", "comma-separated client endpoints (host:port or http://host:port)")
	fs.IntVar(&lf.clients, "clients", 256, "concurrent clients (goroutines, one request in flight each)")
	fs.IntVar(&lf.conns, "conns", 16, "gRPC connections the clients are spread over (client i uses connection i mod conns)")
	fs.IntVar(&lf.total, "total", total, "requests to send; the run stops at this count or at --duration, whichever comes first")
	fs.DurationVar(&lf.duration, "duration", duration, "time limit of the run")
	fs.DurationVar(&lf.timeout, "timeout", 10*time.Second, "timeout of one request")
	fs.IntVar(&lf.keySize, "key-size", 8, "key size in bytes (keys are zero-padded decimal numbers)")
	fs.IntVar(&lf.valSize, "val-size", 256, "value size in bytes")
	fs.Var(&lf.serverPID, "server-pid", "if set, also report this local server's CPU per request (from /proc/PID/stat); PID,PID,... sums the members of a cluster")
	fs.BoolVar(&lf.jsonOut, "json", false, "print the summary as one JSON object instead of a text line")
	fs.StringVar(&lf.cpuProf, "cpuprofile", "", "write this tool's CPU profile of the run to this file")
	fs.BoolVar(&lf.progress, "progress", true, "print a progress line to stderr every second (runs longer than a second)")
	fs.StringVar(&lf.user, "user", "", "name:password to authenticate as, when the server has auth on (as etcd's tools take it)")
}

// Result is the summary of one load run.
type Result struct {
	Op       string  `json:"op"`
	Clients  int     `json:"clients"`
	Conns    int     `json:"conns"`
	Requests int64   `json:"requests"` // succeeded
	Errors   int64   `json:"errors"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	P50Ms    float64 `json:"p50_ms"`
	P90Ms    float64 `json:"p90_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	// ClientCPUus is this tool's CPU time (user+system, all threads) per
	// succeeded request, in microseconds.
	ClientCPUus float64 `json:"client_cpu_us_per_req"`
	// ServerCPUus is the server's, when --server-pid was given.
	ServerCPUus *float64 `json:"server_cpu_us_per_req,omitempty"`
	// OtherCores is how many CPU cores, on average over the run, processes
	// other than this tool and the server (with --server-pid) kept busy:
	// other load on the machine that skews the numbers.
	OtherCores *float64 `json:"other_cpu_cores,omitempty"`
	// StoppedBy is "total" or "duration".
	StoppedBy  string   `json:"stopped_by"`
	FirstError []string `json:"first_errors,omitempty"`
}

func (r *Result) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-7s requests=%d seconds=%.2f req/s=%.0f p50=%s p90=%s p99=%s errors=%d client_cpu=%.1fus/req",
		r.Op, r.Requests, r.Seconds, r.RPS, fmtMs(r.P50Ms), fmtMs(r.P90Ms), fmtMs(r.P99Ms), r.Errors, r.ClientCPUus)
	if r.ServerCPUus != nil {
		fmt.Fprintf(&b, " server_cpu=%.1fus/req", *r.ServerCPUus)
	}
	if r.OtherCores != nil {
		fmt.Fprintf(&b, " other_cpu=%.2fcores", *r.OtherCores)
	}
	fmt.Fprintf(&b, " clients=%d conns=%d stopped_by=%s", r.Clients, r.Conns, r.StoppedBy)
	return b.String()
}

func fmtMs(ms float64) string {
	if ms < 1 {
		return fmt.Sprintf("%.0fus", ms*1000)
	}
	return fmt.Sprintf("%.2fms", ms)
}

// opFunc issues request number i (0-based, unique in the run) from client
// w. A non-nil error counts as a failed request.
type opFunc func(ctx context.Context, cli *clientv3.Client, w int, i int64) error

// fixedKey formats n as a zero-padded decimal of exactly size bytes.
func fixedKey(n int64, size int) string {
	return fmt.Sprintf("%0*d", size, n)
}

func checkKeySpace(keySize int, keys int64) error {
	maxKeys := int64(1)
	for range keySize {
		if maxKeys > 1e17 {
			return nil
		}
		maxKeys *= 10
	}
	if keys > maxKeys {
		return fmt.Errorf("--key-size %d holds only %d distinct keys, %d needed", keySize, maxKeys, keys)
	}
	return nil
}

func makeValue(size int) string {
	b := make([]byte, size)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return string(b)
}

func parseEndpoints(s string) []string {
	var eps []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	return eps
}

// dial opens n clients (gRPC connections), authenticated as user
// ("name:password") unless it is empty, and checks each one answers.
func dial(endpoints []string, n int, user string) ([]*clientv3.Client, error) {
	name, password, _ := strings.Cut(user, ":")
	clis := make([]*clientv3.Client, 0, n)
	for i := range n {
		// Connection i talks to endpoint i mod len: spread, as etcd's tool does.
		ep := endpoints[i%len(endpoints)]
		c, err := clientv3.New(clientv3.Config{
			Endpoints:   []string{ep},
			DialTimeout: 5 * time.Second,
			Logger:      zap.NewNop(),
			Username:    name,
			Password:    password,
		})
		if err != nil {
			closeAll(clis)
			return nil, err
		}
		clis = append(clis, c)
	}
	for _, c := range clis {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.Get(ctx, "\x00detcd-bench-connect", clientv3.WithSerializable())
		cancel()
		if err != nil {
			closeAll(clis)
			return nil, fmt.Errorf("connecting to %v: %w", c.Endpoints(), err)
		}
	}
	return clis, nil
}

// closeAll closes the clients.
func closeAll(clis []*clientv3.Client) {
	for _, c := range clis {
		c.Close()
	}
}

// tuneGC: the tool shares the machine with the server, so it spends less
// of it on GC (clientv3 and gRPC allocate per request). GOGC in the
// environment wins.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}

// report prints a result: one JSON line on stdout, or its text there and
// its first errors on stderr.
func report(stdout, stderr io.Writer, jsonOut bool, v interface{ text() string }, firstErrs []string) {
	if jsonOut {
		b, _ := json.Marshal(v)
		fmt.Fprintln(stdout, string(b))
		return
	}
	fmt.Fprintln(stdout, v.text())
	for _, e := range firstErrs {
		fmt.Fprintf(stderr, "  error: %s\n", e)
	}
}

func cpuSelf() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runLoad runs op from lf.clients goroutines over clis until total
// requests are issued or duration passes.
func runLoad(name string, clis []*clientv3.Client, lf *loadFlags, total int64, op opFunc, progress io.Writer) *Result {
	ctx, cancel := context.WithTimeout(context.Background(), lf.duration)
	defer cancel()

	var (
		next, done, failed atomic.Int64
		errMu              sync.Mutex
		firstErrs          []string
		wg                 sync.WaitGroup
	)
	lats := make([][]time.Duration, lf.clients)
	per := total/int64(lf.clients) + 1

	srvCPU0, srvErr0 := lf.serverPID.cpu()
	busy0, busyErr0 := machineBusy()
	cpu0 := cpuSelf()
	start := time.Now()

	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		if !lf.progress || progress == nil {
			return
		}
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := int64(0)
		for {
			select {
			case <-stopProgress:
				return
			case now := <-t.C:
				d := done.Load()
				fmt.Fprintf(progress, "[%s] %4.0fs %d/%d done, %d req/s in the last second, %d errors\n",
					name, now.Sub(start).Seconds(), d, total, d-last, failed.Load())
				last = d
			}
		}
	}()

	for w := range lf.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cli := clis[w%len(clis)]
			lat := make([]time.Duration, 0, min(per, 1<<20))
			defer func() { lats[w] = lat }()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				rctx, rcancel := context.WithTimeout(ctx, lf.timeout)
				t0 := time.Now()
				err := op(rctx, cli, w, i)
				d := time.Since(t0)
				rcancel()
				if err != nil {
					if ctx.Err() != nil {
						return // cut by the run's time limit: not a failure
					}
					if failed.Add(1) <= 5 {
						errMu.Lock()
						firstErrs = append(firstErrs, err.Error())
						errMu.Unlock()
					}
					continue
				}
				lat = append(lat, d)
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuSelf() - cpu0
	srvCPU1, srvErr1 := lf.serverPID.cpu()
	busy1, busyErr1 := machineBusy()
	stoppedBy := "total"
	if ctx.Err() != nil {
		stoppedBy = "duration"
	}
	close(stopProgress)
	<-progressDone

	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := &Result{
		Op: name, Clients: lf.clients, Conns: len(clis),
		Requests: done.Load(), Errors: failed.Load(),
		Seconds: elapsed.Seconds(), StoppedBy: stoppedBy, FirstError: firstErrs,
	}
	r.RPS = float64(r.Requests) / r.Seconds
	r.P50Ms, r.P90Ms, r.P99Ms = pct(all, 50), pct(all, 90), pct(all, 99)
	if len(all) > 0 {
		r.MaxMs = ms(all[len(all)-1])
	}
	if busyErr0 == nil && busyErr1 == nil {
		other := busy1 - busy0 - cpu
		if len(lf.serverPID) > 0 && srvErr0 == nil && srvErr1 == nil {
			other -= srvCPU1 - srvCPU0
		}
		v := max(0, other.Seconds()/elapsed.Seconds())
		r.OtherCores = &v
	}
	if r.Requests > 0 {
		r.ClientCPUus = float64(cpu.Microseconds()) / float64(r.Requests)
		if len(lf.serverPID) > 0 && srvErr0 == nil && srvErr1 == nil {
			v := float64((srvCPU1 - srvCPU0).Microseconds()) / float64(r.Requests)
			r.ServerCPUus = &v
		}
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pct is the p-th percentile (nearest rank) of sorted durations, in ms.
func pct(sorted []time.Duration, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return ms(sorted[i-1])
}

func runLoadCommand(cmd string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("detcd-bench "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lf loadFlags
	var (
		keySpace    int
		sequential  bool
		consistency string
		keys        int
		seed        uint64
	)
	switch cmd {
	case "put":
		lf.register(fs, 100_000, time.Minute)
		fs.IntVar(&keySpace, "key-space", 100_000, "keys are drawn from [0, key-space)")
		fs.BoolVar(&sequential, "sequential-keys", false, "request i writes key i mod key-space instead of a random key")
	case "range":
		lf.register(fs, 200_000, time.Minute)
		fs.StringVar(&consistency, "consistency", "l", "l: linearizable (read index), s: serializable (local)")
		fs.IntVar(&keys, "keys", 10_000, "keys to pre-populate (not timed); each get reads a random one. 0: read keys [0, --key-space) that already exist")
		fs.IntVar(&keySpace, "key-space", 0, "with --keys 0: how many keys exist already")
	case "fill":
		lf.register(fs, 0, 30*time.Minute)
		fs.IntVar(&keys, "keys", 1_000_000, "distinct keys to write, 0 .. keys-1 (replaces --total)")
	}
	fs.Uint64Var(&seed, "seed", 1, "seed of the random key choice")
	if code, ok := parseFlags(fs, cmd, loadHelp[cmd], args, stderr); !ok {
		return code
	}
	if lf.clients < 1 || lf.conns < 1 || lf.duration <= 0 || lf.keySize < 1 || lf.valSize < 0 {
		fmt.Fprintf(stderr, "detcd-bench %s: --clients, --conns, --duration and --key-size must be positive\n", cmd)
		return 2
	}
	if cmd == "range" && consistency != "l" && consistency != "s" {
		fmt.Fprintf(stderr, "detcd-bench range: --consistency must be l or s\n")
		return 2
	}
	eps := parseEndpoints(lf.endpoints)
	if len(eps) == 0 {
		fmt.Fprintf(stderr, "detcd-bench %s: no --endpoints\n", cmd)
		return 2
	}
	conns := min(lf.conns, lf.clients)
	clis, err := dial(eps, conns, lf.user)
	if err != nil {
		fmt.Fprintf(stderr, "detcd-bench %s: %v\n", cmd, err)
		return 1
	}
	defer closeAll(clis)
	tuneGC()
	stopProf, err := startProfile(lf.cpuProf)
	if err != nil {
		fmt.Fprintf(stderr, "detcd-bench %s: %v\n", cmd, err)
		return 1
	}
	defer stopProf()
	val := makeValue(lf.valSize)
	rngs := make([]*rand.Rand, lf.clients)
	for w := range rngs {
		rngs[w] = rand.New(rand.NewPCG(seed, uint64(w)))
	}
	var res *Result
	switch cmd {
	case "put":
		if keySpace < 1 {
			fmt.Fprintf(stderr, "detcd-bench put: --key-space must be positive\n")
			return 2
		}
		if err := checkKeySpace(lf.keySize, int64(keySpace)); err != nil {
			fmt.Fprintf(stderr, "detcd-bench put: %v\n", err)
			return 2
		}
		op := func(ctx context.Context, cli *clientv3.Client, w int, i int64) error {
			k := i % int64(keySpace)
			if !sequential {
				k = rngs[w].Int64N(int64(keySpace))
			}
			_, err := cli.Put(ctx, fixedKey(k, lf.keySize), val)
			return err
		}
		res = runLoad("put", clis, &lf, int64(lf.total), op, stderr)
	case "fill":
		if err := checkKeySpace(lf.keySize, int64(keys)); err != nil {
			fmt.Fprintf(stderr, "detcd-bench fill: %v\n", err)
			return 2
		}
		op := func(ctx context.Context, cli *clientv3.Client, w int, i int64) error {
			_, err := cli.Put(ctx, fixedKey(i, lf.keySize), val)
			return err
		}
		res = runLoad("fill", clis, &lf, int64(keys), op, stderr)
	case "range":
		n := keys
		if keys > 0 {
			if err := checkKeySpace(lf.keySize, int64(keys)); err != nil {
				fmt.Fprintf(stderr, "detcd-bench range: %v\n", err)
				return 2
			}
			fillFlags := lf
			fillFlags.serverPID = nil
			op := func(ctx context.Context, cli *clientv3.Client, w int, i int64) error {
				_, err := cli.Put(ctx, fixedKey(i, lf.keySize), val)
				return err
			}
			pre := runLoad("populate", clis, &fillFlags, int64(keys), op, stderr)
			if pre.Errors > 0 || pre.Requests != int64(keys) {
				fmt.Fprintf(stderr, "detcd-bench range: pre-population wrote %d of %d keys (%d errors: %v)\n",
					pre.Requests, keys, pre.Errors, pre.FirstError)
				return 1
			}
		} else {
			n = keySpace
			if n < 1 {
				fmt.Fprintf(stderr, "detcd-bench range: --keys 0 needs --key-space\n")
				return 2
			}
		}
		var opts []clientv3.OpOption
		name := "range-l"
		if consistency == "s" {
			opts = append(opts, clientv3.WithSerializable())
			name = "range-s"
		}
		op := func(ctx context.Context, cli *clientv3.Client, w int, i int64) error {
			k := fixedKey(rngs[w].Int64N(int64(n)), lf.keySize)
			resp, err := cli.Get(ctx, k, opts...)
			if err != nil {
				return err
			}
			if len(resp.Kvs) != 1 || string(resp.Kvs[0].Key) != k || len(resp.Kvs[0].Value) != lf.valSize {
				return fmt.Errorf("get %q: %d kvs, want the key with a %d-byte value", k, len(resp.Kvs), lf.valSize)
			}
			return nil
		}
		res = runLoad(name, clis, &lf, int64(lf.total), op, stderr)
	}
	report(stdout, stderr, lf.jsonOut, res, res.FirstError)
	if res.Errors > 0 {
		return 3
	}
	return 0
}

var loadHelp = map[string]string{
	"put": `Puts --val-size values under --key-size keys drawn from [0, --key-space),
at random (or sequentially with --sequential-keys), from --clients
concurrent clients spread over --conns gRPC connections.`,
	"range": `Pre-populates --keys keys (not timed), then issues single-key gets of
random keys among them, linearizable (--consistency l) or serializable
(--consistency s). A get that does not return the key and its value
counts as an error.`,
	"fill": `Writes keys 0 .. --keys-1 once each, as fast as the clients can, for
memory and restart tests. --total is ignored.`,
}

// runWait polls until the endpoint serves a linearizable get.
func runWait(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("detcd-bench wait", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoints := fs.String("endpoints", "127.0.0.1:2379", "comma-separated client endpoints")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if code, ok := parseFlags(fs, "wait", "Polls every 10ms, each time on a fresh connection (so gRPC's reconnect\nbackoff does not add to the time), until a linearizable get succeeds.\nPrints the seconds waited.", args, stderr); !ok {
		return code
	}
	start := time.Now()
	if err := waitReady(parseEndpoints(*endpoints), *timeout); err != nil {
		fmt.Fprintf(stderr, "detcd-bench wait: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "ready after %.3fs\n", time.Since(start).Seconds())
	return 0
}

// waitReady polls until a linearizable get on endpoints succeeds. It
// first waits for the port to accept TCP connections (polling every 5ms),
// then tries gets on fresh connections with a short reconnect backoff, so
// gRPC's default backoff (1s and up) does not quantize the time measured.
func waitReady(endpoints []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for _, ep := range endpoints {
		addr := ep
		if i := strings.Index(addr, "://"); i >= 0 {
			addr = addr[i+3:]
		}
		for {
			c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not accepting connections within %v: %v", addr, timeout, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for time.Now().Before(deadline) {
		last = tryGet(endpoints, min(2*time.Second, time.Until(deadline)))
		if last == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("no linearizable get served within %v: %v", timeout, last)
}

func tryGet(endpoints []string, timeout time.Duration) error {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: endpoints, DialTimeout: timeout, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.2, MaxDelay: 50 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err = cli.Get(ctx, "\x00detcd-bench-ready")
	return err
}
