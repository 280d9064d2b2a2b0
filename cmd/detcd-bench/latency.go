package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

const latencyHelp = `One client, one request at a time, on one gRPC connection: what a single
request costs, against what it cannot cost less than (issue 17's one-client
goals). Each round sends, in turn, a bare gRPC echo (the health service's
Check, which every etcd and detcd serves and answers from a map), a
serializable get, a linearizable get and a put of --val-size bytes, all on
the same connection, so that the machine's noise falls alike on each. Then
it times one append of a put-sized record to a preallocated file in
--fsync-dir followed by fdatasync: one log write as a server makes it (put
the directory on the server's disk), at the same pace as the server's, one
a round, since a disk's flush time depends on what it did just before
(back to back, this disk's p50 was 120-130 us; one a round, 180-210 us).
An echo not timed ends the round, so that each timed request follows
another, as the put follows a get.

Reported: p50, p90 and p99 of each, and the overheads the goals are about:
each get's p50 less the echo's (goal: within 20 us) and the put's p50 less
one fsync and one echo (goal: within 100 us).`

// latencyFlags are the latency command's flags.
type latencyFlags struct {
	endpoints string
	total     int
	duration  time.Duration
	valSize   int
	fsyncDir  string
	jsonOut   bool
}

// LatencyResult is what one latency run measured, in microseconds.
type LatencyResult struct {
	Rounds int                 `json:"rounds"`
	Ops    map[string]Quantile `json:"ops"` // echo, get_serializable, get_linearizable, put, fsync
	// The overheads the goals are about, from the p50s.
	SerializableOverUs float64 `json:"serializable_over_echo_us"`
	LinearizableOverUs float64 `json:"linearizable_over_echo_us"`
	PutOverUs          float64 `json:"put_over_fsync_and_echo_us"`
}

// Quantile is a distribution's p50, p90 and p99 in microseconds.
type Quantile struct {
	P50us float64 `json:"p50_us"`
	P90us float64 `json:"p90_us"`
	P99us float64 `json:"p99_us"`
}

// latencyOps are the kinds of request a round sends, in its order.
var latencyOps = []string{"echo", "get_serializable", "get_linearizable", "put"}

func runLatency(args []string, stdout, stderr io.Writer) int {
	var lf latencyFlags
	fs := flag.NewFlagSet("latency", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&lf.endpoints, "endpoints", "127.0.0.1:2379", "the client endpoint (host:port or http://host:port)")
	fs.IntVar(&lf.total, "total", 2000, "rounds (each: an echo, two gets, a put, a timed fsync and an echo not timed)")
	fs.DurationVar(&lf.duration, "duration", 60*time.Second, "time limit of the rounds")
	fs.IntVar(&lf.valSize, "val-size", 256, "the put's value size in bytes")
	fs.StringVar(&lf.fsyncDir, "fsync-dir", ".", "where the fsync probe writes its scratch file (removed after)")
	fs.BoolVar(&lf.jsonOut, "json", false, "print the result as one JSON object")
	if code, ok := parseFlags(fs, "latency", latencyHelp, args, stderr); !ok {
		return code
	}
	if lf.total <= 0 || lf.valSize < 0 {
		fmt.Fprintln(stderr, "detcd-bench latency: --total must be positive and --val-size not negative")
		return 2
	}
	res, err := measureLatency(lf)
	if err != nil {
		fmt.Fprintf(stderr, "detcd-bench latency: %v\n", err)
		return 1
	}
	if lf.jsonOut {
		b, _ := json.Marshal(res)
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	fmt.Fprint(stdout, res.text())
	return 0
}

func measureLatency(lf latencyFlags) (*LatencyResult, error) {
	eps := parseEndpoints(lf.endpoints)
	if len(eps) != 1 {
		return nil, fmt.Errorf("--endpoints takes one endpoint, got %d", len(eps))
	}
	clis, err := dial(eps, 1, "")
	if err != nil {
		return nil, err
	}
	defer closeAll(clis)
	cli := clis[0]
	hc := healthpb.NewHealthClient(cli.ActiveConnection())
	const key = "detcd-bench-latency"
	val := makeValue(lf.valSize)
	calls := map[string]func(context.Context) error{
		"echo": func(ctx context.Context) error {
			_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		},
		"get_serializable": func(ctx context.Context) error {
			_, err := cli.Get(ctx, key, clientv3.WithSerializable())
			return err
		},
		"get_linearizable": func(ctx context.Context) error {
			_, err := cli.Get(ctx, key)
			return err
		},
		"put": func(ctx context.Context) error {
			_, err := cli.Put(ctx, key, val)
			return err
		},
	}
	probe, err := newFsyncProbe(lf.fsyncDir, 64+len(key)+lf.valSize)
	if err != nil {
		return nil, fmt.Errorf("fsync probe: %w", err)
	}
	defer probe.close()
	took := map[string][]time.Duration{}
	deadline := time.Now().Add(lf.duration)
	rounds := 0
	for ; rounds < lf.total && time.Now().Before(deadline); rounds++ {
		for _, op := range latencyOps {
			d, err := timeCall(calls[op])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", op, err)
			}
			took[op] = append(took[op], d)
		}
		d, err := probe.time()
		if err != nil {
			return nil, fmt.Errorf("fsync probe: %w", err)
		}
		took["fsync"] = append(took["fsync"], d)
		// An echo not timed: the server idled through the probe, and the
		// next round's echo must find it as awake as the put found it,
		// right after a get.
		if _, err := timeCall(calls["echo"]); err != nil {
			return nil, fmt.Errorf("echo: %w", err)
		}
	}
	res := &LatencyResult{Rounds: rounds, Ops: map[string]Quantile{}}
	for op, ds := range took { //detcd:maporder-ok: each goes to its own entry
		res.Ops[op] = quantiles(ds)
	}
	echo := res.Ops["echo"].P50us
	res.SerializableOverUs = res.Ops["get_serializable"].P50us - echo
	res.LinearizableOverUs = res.Ops["get_linearizable"].P50us - echo
	res.PutOverUs = res.Ops["put"].P50us - res.Ops["fsync"].P50us - echo
	return res, nil
}

// timeCall times one request, with a timeout of its own.
func timeCall(call func(context.Context) error) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := call(ctx)
	return time.Since(start), err
}

// fsyncFileBytes is the probe's file, preallocated as a server's log
// segment is, so that each fdatasync flushes data, not the file's size.
const fsyncFileBytes = 64 << 20

// fsyncProbe appends records to a preallocated scratch file, timing each
// write and fdatasync.
type fsyncProbe struct {
	f   *os.File
	rec []byte
	off int64
}

func newFsyncProbe(dir string, recordBytes int) (*fsyncProbe, error) {
	f, err := os.CreateTemp(dir, "detcd-bench-fsync-*")
	if err != nil {
		return nil, err
	}
	if err := preallocate(f, fsyncFileBytes); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("%s: %w", filepath.Base(f.Name()), err)
	}
	return &fsyncProbe{f: f, rec: make([]byte, recordBytes)}, nil
}

// time appends one record and fdatasyncs it.
func (p *fsyncProbe) time() (time.Duration, error) {
	if p.off+int64(len(p.rec)) > fsyncFileBytes {
		p.off = 0
	}
	start := time.Now()
	if _, err := p.f.WriteAt(p.rec, p.off); err != nil {
		return 0, err
	}
	if err := fdatasync(p.f); err != nil {
		return 0, err
	}
	p.off += int64(len(p.rec))
	return time.Since(start), nil
}

// close removes the scratch file.
func (p *fsyncProbe) close() {
	p.f.Close()
	os.Remove(p.f.Name())
}

// quantiles of ds, in microseconds (pct's nearest rank).
func quantiles(ds []time.Duration) Quantile {
	s := slices.Clone(ds)
	slices.Sort(s)
	us := func(p int) float64 { return pct(s, p) * 1e3 }
	return Quantile{P50us: us(50), P90us: us(90), P99us: us(99)}
}

func (r *LatencyResult) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "latency: %d rounds, one client, one connection (us)\n", r.Rounds)
	for _, op := range append(slices.Clone(latencyOps), "fsync") {
		q := r.Ops[op]
		fmt.Fprintf(&b, "  %-17s p50 %8.1f  p90 %8.1f  p99 %8.1f\n", op, q.P50us, q.P90us, q.P99us)
	}
	fmt.Fprintf(&b, "  serializable get over echo: %.1f us (goal: at most 20)\n", r.SerializableOverUs)
	fmt.Fprintf(&b, "  linearizable get over echo: %.1f us (goal: at most 20)\n", r.LinearizableOverUs)
	fmt.Fprintf(&b, "  put over fsync + echo:      %.1f us (goal: at most 100)\n", r.PutOverUs)
	return b.String()
}

// preallocate gives f size bytes of disk, as a server's log segment has.
func preallocate(f *os.File, size int64) error {
	return syscall.Fallocate(int(f.Fd()), 0, 0, size)
}

// fdatasync flushes f's data, as a server's log write does.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
