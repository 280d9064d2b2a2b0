package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// The comparison starts servers and load runs as child processes. Every
// child gets SIGKILL if this process dies (Pdeathsig), and a SIGINT or
// SIGTERM to this process kills them before it exits, so nothing is left
// behind.

var (
	childMu  sync.Mutex
	children = map[*exec.Cmd]bool{}
)

func track(c *exec.Cmd)   { childMu.Lock(); children[c] = true; childMu.Unlock() }
func untrack(c *exec.Cmd) { childMu.Lock(); delete(children, c); childMu.Unlock() }

func killChildren() {
	childMu.Lock()
	defer childMu.Unlock()
	for c := range children {
		if c.Process != nil {
			c.Process.Kill()
		}
	}
}

func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

type compareFlags struct {
	detcd, etcd     string
	work            string
	rounds          int
	clients, conns  int
	putTotal        int
	putKeySpace     int
	rangeTotal      int
	rangeKeys       int
	duration        time.Duration
	valSize         int
	memory          bool
	fillKeys        int
	settle          time.Duration
	restarts        int
	readyTimeout    time.Duration
	jsonOut         string
	keepData        bool
	loadToolBinPath string

	clusterMembers  int
	clusterRounds   int
	clusterDuration time.Duration
	clusterWrites   string

	extra         string
	watchWatchers int
	watchStreams  string
	watchTotal    int
	watchRate     float64
	watchRateTime time.Duration
	leases        int
	kaDuration    time.Duration
	// compactRevisions is the fill of the extra compact workload.
	compactRevisions int
	extraFlags       map[string]string

	// The join scenario (join.go).
	joinKeys    int
	joinRounds  int
	joinLearner bool
	joinTimeout time.Duration
}

// instance is one server process on one data dir.
type instance struct {
	name, bin, dir string
	clientPort     int
	peerPort       int
	// member, initialCluster and token are set for a member of a
	// multi-member cluster (newCluster); a single member is "default".
	member, initialCluster, token string
	// state is --initial-cluster-state for a member: "new" if empty,
	// "existing" for one added at runtime (join.go).
	state string
	// extra flags follow the others.
	extra   []string
	cmd     *exec.Cmd
	log     *os.File
	exited  chan struct{}
	waitErr error
}

func (in *instance) endpoint() string { return fmt.Sprintf("127.0.0.1:%d", in.clientPort) }

func (in *instance) peerURL() string { return fmt.Sprintf("http://127.0.0.1:%d", in.peerPort) }

func (in *instance) args() []string {
	c := fmt.Sprintf("http://127.0.0.1:%d", in.clientPort)
	p := in.peerURL()
	if in.member == "" {
		return append([]string{"--name", "default", "--data-dir", in.dir,
			"--listen-client-urls", c, "--advertise-client-urls", c,
			"--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
			"--initial-cluster", "default=" + p}, in.extra...)
	}
	state := in.state
	if state == "" {
		state = "new"
	}
	return append([]string{"--name", in.member, "--data-dir", in.dir,
		"--listen-client-urls", c, "--advertise-client-urls", c,
		"--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
		"--initial-cluster", in.initialCluster, "--initial-cluster-state", state,
		"--initial-cluster-token", in.token}, in.extra...)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func newInstance(name, bin, dir string) (*instance, error) {
	cp, err := freePort()
	if err != nil {
		return nil, err
	}
	pp, err := freePort()
	if err != nil {
		return nil, err
	}
	for pp == cp {
		if pp, err = freePort(); err != nil {
			return nil, err
		}
	}
	return &instance{name: name, bin: bin, dir: dir, clientPort: cp, peerPort: pp}, nil
}

// start launches the server; its output is appended to dir+".log".
func (in *instance) start() error {
	lf, err := os.OpenFile(in.dir+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(lf, "==== %s start %s %s\n", time.Now().Format(time.RFC3339Nano), in.bin, strings.Join(in.args(), " "))
	cmd := exec.Command(in.bin, in.args()...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return err
	}
	track(cmd)
	in.cmd, in.log, in.exited = cmd, lf, make(chan struct{})
	go func() {
		in.waitErr = cmd.Wait()
		untrack(cmd)
		close(in.exited)
	}()
	return nil
}

func (in *instance) pid() int { return in.cmd.Process.Pid }

func (in *instance) alive() bool {
	select {
	case <-in.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits up to 30 s, then SIGKILL. It returns how
// long the server took to exit and whether it exited cleanly (status 0).
func (in *instance) stop() (time.Duration, error) {
	if in.cmd == nil {
		return 0, nil
	}
	defer in.log.Close()
	t0 := time.Now()
	if in.alive() {
		in.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-in.exited:
	case <-time.After(30 * time.Second):
		in.cmd.Process.Kill()
		<-in.exited
		return time.Since(t0), fmt.Errorf("did not exit within 30s of SIGTERM; killed")
	}
	return time.Since(t0), in.waitErr
}

// ready waits until the server serves a linearizable get, or it exits.
func (in *instance) ready(timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- waitReady([]string{in.endpoint()}, timeout) }()
	select {
	case err := <-done:
		return err
	case <-in.exited:
		return fmt.Errorf("server exited while starting: %v", in.waitErr)
	}
}

func (in *instance) logTail(n int) string {
	b, _ := os.ReadFile(in.dir + ".log")
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// runLoadTool runs this binary's load command against the endpoints, with
// --server-pid (every member of a cluster, so their CPU is summed), and
// returns its result.
func (cf *compareFlags) runLoadTool(eps []string, pids pidList, logName string, args ...string) (*Result, error) {
	args = append(args, "--endpoints", strings.Join(eps, ","), "--server-pid", pids.String(), "--json")
	lf, err := os.OpenFile(logName, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	fmt.Fprintf(lf, "==== %s detcd-bench %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	var out bytes.Buffer
	cmd := exec.Command(cf.loadToolBinPath, args...)
	cmd.Stdout, cmd.Stderr = &out, lf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	track(cmd)
	err = cmd.Wait()
	untrack(cmd)
	var r Result
	if jerr := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &r); jerr != nil {
		return nil, fmt.Errorf("load tool: %v (output %q, see %s)", err, out.String(), logName)
	}
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
		return &r, fmt.Errorf("load tool: %v (see %s)", err, logName)
	}
	return &r, nil
}

// runRecord is one load run in the comparison.
type runRecord struct {
	Server   string `json:"server"`
	Workload string `json:"workload"`
	Round    int    `json:"round"`
	Members  int    `json:"members"`
	// Leader is the member that led when a cluster became ready.
	Leader   string  `json:"leader,omitempty"`
	StartSec float64 `json:"start_to_ready_s"`
	Result   *Result `json:"result,omitempty"`
	Err      string  `json:"error,omitempty"`
}

// memRecord is the fill, memory and restart test of one server.
type memRecord struct {
	Server       string    `json:"server"`
	Fill         *Result   `json:"fill,omitempty"`
	RSSMiB       float64   `json:"rss_after_fill_mib"`
	HWMMiB       float64   `json:"peak_rss_mib"`
	DiskMiB      float64   `json:"data_dir_mib"`
	KeysCounted  int64     `json:"keys_counted"`
	StopSec      float64   `json:"stop_s"`
	RestartSec   []float64 `json:"restart_to_serving_s"`
	RestartRSS   []float64 `json:"rss_at_first_serve_mib"`
	SettledRSS   []float64 `json:"rss_settled_after_restart_mib"`
	RestartCount []int64   `json:"keys_after_restart"`
	Err          string    `json:"error,omitempty"`
}

func runCompare(args []string, stdout, stderr io.Writer) int {
	var cf compareFlags
	fs := flag.NewFlagSet("detcd-bench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cf.detcd, "detcd", "bin/detcd", "the detcd binary")
	fs.StringVar(&cf.etcd, "etcd", "bin/etcd-ref/etcd", "the etcd binary; empty: detcd alone")
	fs.StringVar(&cf.work, "work", "", "directory for data dirs, logs and results.json (default: a new one under $TMPDIR)")
	fs.IntVar(&cf.rounds, "rounds", 3, "runs of each workload on each server, alternating servers (0: only the cluster runs)")
	fs.IntVar(&cf.clients, "clients", 256, "concurrent clients")
	fs.IntVar(&cf.conns, "conns", 16, "gRPC connections")
	fs.IntVar(&cf.putTotal, "put-total", 150_000, "requests per put run")
	fs.IntVar(&cf.putKeySpace, "put-key-space", 100_000, "put keys are random in [0, put-key-space)")
	fs.IntVar(&cf.rangeTotal, "range-total", 300_000, "requests per range run")
	fs.IntVar(&cf.rangeKeys, "range-keys", 10_000, "keys pre-populated before a range run")
	fs.DurationVar(&cf.duration, "duration", 30*time.Second, "time limit of each load run")
	fs.IntVar(&cf.valSize, "val-size", 256, "value size")
	fs.BoolVar(&cf.memory, "memory", true, "run the fill, memory and restart test")
	fs.IntVar(&cf.fillKeys, "fill-keys", 1_000_000, "keys written by the memory test")
	fs.DurationVar(&cf.settle, "settle", 10*time.Second, "wait after the fill before reading VmRSS")
	fs.IntVar(&cf.restarts, "restarts", 3, "restarts timed after the fill (same data dir)")
	fs.DurationVar(&cf.readyTimeout, "ready-timeout", 2*time.Minute, "how long a server may take to serve after a start")
	fs.StringVar(&cf.jsonOut, "json-out", "", "also write every run and the medians here (default WORK/results.json)")
	fs.BoolVar(&cf.keepData, "keep-data", false, "keep data dirs (logs are always kept)")
	fs.IntVar(&cf.clusterMembers, "cluster-members", 3, "members of the cluster the -Nm workloads run on; 0 or 1: no cluster runs")
	fs.IntVar(&cf.clusterRounds, "cluster-rounds", 2, "runs of each cluster workload on each server, after the single-member rounds")
	fs.DurationVar(&cf.clusterDuration, "cluster-duration", 15*time.Second, "time limit of each cluster load run (the request counts are the single-member ones)")
	fs.StringVar(&cf.clusterWrites, "cluster-writes", "all", "where cluster puts go: all (connections spread over every member, followers forward to the leader, as etcd's benchmark with all endpoints) or leader (every connection on the leader, as its --target-leader)")
	fs.StringVar(&cf.extra, "extra", "", "extra workloads, once per server after the rounds, each on a fresh server: comma-separated of watch, watch-rate, lease, compact")
	fs.IntVar(&cf.watchWatchers, "watch-watchers", 1000, "extra watch/watch-rate: watchers")
	fs.StringVar(&cf.watchStreams, "watch-streams", "1,100", "extra watch/watch-rate: stream shapes")
	fs.IntVar(&cf.watchTotal, "watch-total", 2000, "extra watch: puts, as fast as one writer can")
	fs.Float64Var(&cf.watchRate, "watch-rate", 100, "extra watch-rate: puts/s")
	fs.DurationVar(&cf.watchRateTime, "watch-rate-time", 10*time.Second, "extra watch-rate: how long it puts")
	fs.IntVar(&cf.leases, "leases", 10_000, "extra lease: leases in each phase")
	fs.DurationVar(&cf.kaDuration, "ka-duration", 10*time.Second, "extra lease: time of the keep-alive load")
	fs.IntVar(&cf.compactRevisions, "compact-revisions", 1_000_000, "extra compact: revisions to fill and then compact")
	fs.IntVar(&cf.joinKeys, "join-keys", 200_000, "join scenario: keys of 1 KiB on the leader before the member add (0: no join runs)")
	fs.IntVar(&cf.joinRounds, "join-rounds", 1, "join scenario: runs per server, alternating servers")
	fs.BoolVar(&cf.joinLearner, "join-learner", false, "join scenario: add the member with --learner (default a voter, as issue 18 measured)")
	fs.DurationVar(&cf.joinTimeout, "join-timeout", 10*time.Minute, "join scenario: how long the new member may take to catch up")
	cf.extraFlags = map[string]string{}
	for _, wl := range extraWorkloads {
		fs.Func(wl+"-flags", "extra "+wl+": more flags for 'detcd-bench "+strings.TrimSuffix(wl, "-rate")+"', space-separated", func(v string) error {
			cf.extraFlags[wl] = v
			return nil
		})
	}
	if code, ok := parseFlags(fs, "compare", compareHelp, args, stderr); !ok {
		return code
	}
	if cf.rounds < 0 || (cf.clusterWrites != "all" && cf.clusterWrites != "leader") {
		fs.Usage()
		return 2
	}
	extras, err := parseExtra(cf.extra)
	if err != nil {
		fmt.Fprintf(stderr, "detcd-bench compare: --extra: %v\n", err)
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "detcd-bench compare: %v\n", err)
		return 1
	}
	cf.loadToolBinPath = self
	type srv struct{ name, bin string }
	servers := []srv{{"detcd", cf.detcd}}
	if cf.etcd != "" {
		servers = append(servers, srv{"etcd", cf.etcd})
	}
	for i, s := range servers {
		p, err := filepath.Abs(s.bin)
		if err == nil {
			_, err = os.Stat(p)
		}
		if err != nil {
			fmt.Fprintf(stderr, "detcd-bench compare: %s binary: %v\n", s.name, err)
			return 1
		}
		servers[i].bin = p
	}
	if cf.work == "" {
		if cf.work, err = os.MkdirTemp("", "detcd-bench-"); err != nil {
			fmt.Fprintf(stderr, "detcd-bench compare: %v\n", err)
			return 1
		}
	} else if err := os.MkdirAll(cf.work, 0o755); err != nil {
		fmt.Fprintf(stderr, "detcd-bench compare: %v\n", err)
		return 1
	}
	if cf.jsonOut == "" {
		cf.jsonOut = filepath.Join(cf.work, "results.json")
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Fprintf(stderr, "\ndetcd-bench compare: %v: killing servers and load runs\n", s)
		killChildren()
		os.Exit(130)
	}()
	defer killChildren()

	fmt.Fprintf(stdout, "detcd-bench compare: work dir %s (logs per run there)\n", cf.work)
	fmt.Fprintf(stdout, "machine: %d CPUs (load tool and server share them), %s\n", numCPU(), kernel())
	for _, s := range servers {
		fmt.Fprintf(stdout, "  %-6s %s (%s)\n", s.name, s.bin, binVersion(s.bin))
	}
	started := time.Now()

	type workload struct {
		name    string
		members int
		args    []string
	}
	c, k, v := strconv.Itoa(cf.clients), strconv.Itoa(cf.conns), strconv.Itoa(cf.valSize)
	loads := func(suffix string, members int, d time.Duration) []workload {
		return []workload{
			{"put" + suffix, members, []string{"put", "--clients", c, "--conns", k, "--total", strconv.Itoa(cf.putTotal), "--duration", d.String(),
				"--val-size", v, "--key-space", strconv.Itoa(cf.putKeySpace)}},
			{"range-s" + suffix, members, []string{"range", "--consistency", "s", "--clients", c, "--conns", k, "--total", strconv.Itoa(cf.rangeTotal),
				"--duration", d.String(), "--val-size", v, "--keys", strconv.Itoa(cf.rangeKeys)}},
			{"range-l" + suffix, members, []string{"range", "--consistency", "l", "--clients", c, "--conns", k, "--total", strconv.Itoa(cf.rangeTotal),
				"--duration", d.String(), "--val-size", v, "--keys", strconv.Itoa(cf.rangeKeys)}},
		}
	}
	// One run: a fresh server or cluster, ready, one load, stopped.
	runOne := func(s srv, wl workload, round int) runRecord {
		rec := runRecord{Server: s.name, Workload: wl.name, Round: round, Members: max(1, wl.members)}
		base := filepath.Join(cf.work, fmt.Sprintf("%s-%s-%d", s.name, wl.name, round))
		cl, err := newCluster(s.name, s.bin, base, wl.members)
		if err == nil {
			err = cl.start()
		}
		if err == nil {
			t0 := time.Now()
			if err = cl.ready(cf.readyTimeout); err == nil {
				rec.StartSec = time.Since(t0).Seconds()
				rec.Leader = cl.leaderName()
				eps := cl.endpoints()
				if cf.clusterWrites == "leader" && cl.size() > 1 && strings.HasPrefix(wl.name, "put") {
					if cl.leader < 0 {
						err = fmt.Errorf("no member says it leads")
					} else {
						eps = []string{eps[cl.leader]}
					}
				}
				if err == nil {
					rec.Result, err = cf.runLoadTool(eps, cl.pids(), base+".load.log", wl.args...)
				}
			}
			if derr := cl.dead(); derr != nil && err == nil {
				err = derr
			}
			if serr := cl.stop(); serr != nil && err == nil {
				err = fmt.Errorf("server stop: %v", serr)
			}
		}
		if err != nil {
			rec.Err = err.Error()
			if cl != nil {
				rec.Err += "\n  server log tail:\n" + indent(cl.logTail(8))
			}
		}
		if !cf.keepData && cl != nil {
			cl.removeData()
		}
		return rec
	}
	var runs []runRecord
	rounds := func(n int, wls []workload) {
		for round := 1; round <= n; round++ {
			for _, wl := range wls {
				for _, s := range servers {
					rec := runOne(s, wl, round)
					runs = append(runs, rec)
					printRun(stdout, rec)
				}
			}
		}
	}
	rounds(cf.rounds, loads("", 1, cf.duration))
	if cf.clusterOn() {
		rounds(cf.clusterRounds, loads(fmt.Sprintf("-%dm", cf.clusterMembers), cf.clusterMembers, cf.clusterDuration))
	}

	var extraRecs []extraRecord
	for _, wl := range extraWorkloads {
		if !slices.Contains(extras, wl) {
			continue
		}
		for _, s := range servers {
			rec := cf.runExtra(s.name, s.bin, wl)
			extraRecs = append(extraRecs, rec)
			printExtra(stdout, rec)
		}
	}

	var mems []memRecord
	if cf.memory {
		for _, s := range servers {
			m := cf.memoryTest(s.name, s.bin, stdout)
			mems = append(mems, m)
		}
	}

	var joins []joinRecord
	for round := 1; cf.joinKeys > 0 && round <= cf.joinRounds; round++ {
		for _, s := range servers {
			joins = append(joins, cf.joinTest(s.name, s.bin, round, stdout))
		}
	}

	// A run of the join scenario alone (--rounds 0, no cluster, no
	// memory test) prints no empty load table or targets.
	var meds []medianRow
	if len(runs) > 0 {
		fmt.Fprintf(stdout, "\n== %d round(s), %d clients over %d connections, %d-byte values, single member, 127.0.0.1; medians ==\n",
			cf.rounds, cf.clients, cf.conns, cf.valSize)
		if cf.clusterOn() {
			to := "connection i to member i mod %[1]d, followers forward to the leader"
			if cf.clusterWrites == "leader" {
				to = "puts through the leader alone, ranges on connection i to member i mod %[1]d"
			}
			fmt.Fprintf(stdout, "== -%[1]dm: %[2]d round(s) on a %[1]d-member cluster, limited to %[3]v each; "+to+"; server CPU summed over the members ==\n",
				cf.clusterMembers, cf.clusterRounds, cf.clusterDuration)
		}
		meds = printTable(stdout, runs, servers[0].name, len(servers) > 1)
	}
	printExtraTables(stdout, extraRecs, cf)
	if cf.memory {
		printMemTable(stdout, mems, cf)
	}
	if len(joins) > 0 {
		printJoinTable(stdout, joins, cf)
	}
	if len(servers) > 1 && (len(runs) > 0 || cf.memory) {
		printTargets(stdout, meds, mems, cf)
	}
	fmt.Fprintf(stdout, "\ntotal time %s; work dir %s\n", time.Since(started).Round(time.Second), cf.work)

	all := map[string]any{"runs": runs, "medians": meds, "memory": mems, "extra": extraRecs, "join": joins, "flags": cf}
	if b, err := json.MarshalIndent(all, "", "  "); err == nil {
		os.WriteFile(cf.jsonOut, b, 0o644)
	}
	for _, r := range runs {
		if r.Err != "" || (r.Result != nil && r.Result.Errors > 0) {
			return 3
		}
	}
	for _, m := range mems {
		if m.Err != "" {
			return 3
		}
	}
	for _, r := range extraRecs {
		if r.failed() {
			return 3
		}
	}
	for _, r := range joins {
		if r.failed() {
			return 3
		}
	}
	return 0
}

// isTermExit: a server that exits on SIGTERM by the signal (not a status)
// has not failed.
func isTermExit(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return true
		}
	}
	return false
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func printRun(w io.Writer, r runRecord) {
	fmt.Fprintf(w, "round %d %-10s %-6s ", r.Round, r.Workload, r.Server)
	if r.Result != nil {
		x := r.Result
		leader := ""
		if r.Leader != "" {
			leader = ", leader " + r.Leader
		}
		fmt.Fprintf(w, "%8.0f req/s  p50 %-8s p99 %-8s server %6s us/req  client %5.1f us/req  errors %d  (%d req in %.1fs, ready in %.2fs%s, other load %s cores)",
			x.RPS, fmtMs(x.P50Ms), fmtMs(x.P99Ms), optF(x.ServerCPUus), x.ClientCPUus, x.Errors, x.Requests, x.Seconds, r.StartSec, leader, optF2(x.OtherCores))
	}
	if r.Err != "" {
		fmt.Fprintf(w, " ERROR: %s", r.Err)
	}
	fmt.Fprintln(w)
}

func optF2(p *float64) string {
	if p == nil {
		return "?"
	}
	return fmt.Sprintf("%.2f", *p)
}

func optF(p *float64) string {
	if p == nil {
		return "?"
	}
	return fmt.Sprintf("%.1f", *p)
}

func (cf *compareFlags) memoryTest(name, bin string, stdout io.Writer) memRecord {
	m := memRecord{Server: name}
	base := filepath.Join(cf.work, name+"-memory")
	fail := func(in *instance, err error) memRecord {
		m.Err = err.Error()
		if in != nil {
			m.Err += "\n  server log tail:\n" + indent(in.logTail(8))
			in.stop()
		}
		fmt.Fprintf(stdout, "memory  %-6s ERROR: %s\n", name, m.Err)
		if !cf.keepData {
			os.RemoveAll(base)
		}
		return m
	}
	in, err := newInstance(name, bin, base)
	if err != nil {
		return fail(nil, err)
	}
	if err := in.start(); err != nil {
		return fail(nil, err)
	}
	if err := in.ready(cf.readyTimeout); err != nil {
		return fail(in, err)
	}
	m.Fill, err = cf.runLoadTool([]string{in.endpoint()}, pidList{in.pid()}, base+".load.log", "fill", "--keys", strconv.Itoa(cf.fillKeys),
		"--val-size", strconv.Itoa(cf.valSize), "--clients", strconv.Itoa(cf.clients), "--conns", strconv.Itoa(cf.conns),
		"--duration", "30m")
	if err != nil {
		return fail(in, err)
	}
	fmt.Fprintf(stdout, "memory  %-6s fill %d keys: %.0f req/s, %.1fs, server %s us/req, errors %d; settling %v\n",
		name, m.Fill.Requests, m.Fill.RPS, m.Fill.Seconds, optF(m.Fill.ServerCPUus), m.Fill.Errors, cf.settle)
	time.Sleep(cf.settle)
	if !in.alive() {
		return fail(in, fmt.Errorf("server exited after the fill: %v", in.waitErr))
	}
	rss, err1 := procStatusKB(in.pid(), "VmRSS")
	hwm, err2 := procStatusKB(in.pid(), "VmHWM")
	if err := errors.Join(err1, err2); err != nil {
		return fail(in, err)
	}
	m.RSSMiB, m.HWMMiB = float64(rss)/1024, float64(hwm)/1024
	if m.KeysCounted, err = countKeys(in.endpoint()); err != nil {
		return fail(in, fmt.Errorf("counting keys: %v", err))
	}
	stopT, err := in.stop()
	m.StopSec = stopT.Seconds()
	if err != nil && !isTermExit(err) {
		return fail(nil, fmt.Errorf("stop after fill: %v", err))
	}
	m.DiskMiB = float64(dirSize(base)) / (1 << 20)
	fmt.Fprintf(stdout, "memory  %-6s VmRSS %.0f MiB (peak %.0f MiB), %d keys counted, data dir %.0f MiB, stopped in %.2fs\n",
		name, m.RSSMiB, m.HWMMiB, m.KeysCounted, m.DiskMiB, m.StopSec)
	for i := 0; i < cf.restarts; i++ {
		t0 := time.Now()
		if err := in.start(); err != nil {
			return fail(nil, err)
		}
		if err := in.ready(cf.readyTimeout); err != nil {
			return fail(in, fmt.Errorf("restart %d: %v", i+1, err))
		}
		sec := time.Since(t0).Seconds()
		rss, _ := procStatusKB(in.pid(), "VmRSS")
		n, err := countKeys(in.endpoint())
		if err != nil {
			return fail(in, fmt.Errorf("restart %d: counting keys: %v", i+1, err))
		}
		time.Sleep(cf.settle)
		settled, _ := procStatusKB(in.pid(), "VmRSS")
		m.RestartSec = append(m.RestartSec, sec)
		m.RestartRSS = append(m.RestartRSS, float64(rss)/1024)
		m.SettledRSS = append(m.SettledRSS, float64(settled)/1024)
		m.RestartCount = append(m.RestartCount, n)
		if _, err := in.stop(); err != nil && !isTermExit(err) {
			return fail(nil, fmt.Errorf("stop after restart %d: %v", i+1, err))
		}
		fmt.Fprintf(stdout, "memory  %-6s restart %d: serving a linearizable get after %.2fs, VmRSS then %.0f MiB, %v later %.0f MiB, %d keys\n",
			name, i+1, sec, float64(rss)/1024, cf.settle, float64(settled)/1024, n)
	}
	if !cf.keepData {
		os.RemoveAll(base)
	}
	return m
}

// countKeys counts every key with a count-only range.
func countKeys(ep string) (int64, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := cli.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Count, nil
}

// median of a metric over runs; NaN-free: runs without a value are left out.
func median(xs []float64) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

// medianRow is the medians of one workload on one server.
type medianRow struct {
	Workload  string    `json:"workload"`
	Server    string    `json:"server"`
	Runs      int       `json:"runs"`
	Failed    int       `json:"failed_runs"`
	RPS       float64   `json:"rps"`
	P50Ms     float64   `json:"p50_ms"`
	P99Ms     float64   `json:"p99_ms"`
	ServerCPU float64   `json:"server_cpu_us_per_req"`
	ClientCPU float64   `json:"client_cpu_us_per_req"`
	Errors    int64     `json:"errors"`
	Other     float64   `json:"other_cpu_cores"`
	RPSAll    []float64 `json:"rps_each_run"`
}

func medians(runs []runRecord) []medianRow {
	var rows []medianRow
	idx := map[[2]string]int{}
	type acc struct{ rps, p50, p99, srv, cli, other []float64 }
	accs := map[[2]string]*acc{}
	for _, r := range runs {
		key := [2]string{r.Workload, r.Server}
		i, ok := idx[key]
		if !ok {
			i = len(rows)
			idx[key] = i
			rows = append(rows, medianRow{Workload: r.Workload, Server: r.Server})
			accs[key] = &acc{}
		}
		row, a := &rows[i], accs[key]
		row.Runs++
		if r.Result == nil || r.Err != "" {
			row.Failed++
		}
		if r.Result == nil {
			continue
		}
		x := r.Result
		row.Errors += x.Errors
		a.rps = append(a.rps, x.RPS)
		a.p50 = append(a.p50, x.P50Ms)
		a.p99 = append(a.p99, x.P99Ms)
		a.cli = append(a.cli, x.ClientCPUus)
		if x.ServerCPUus != nil {
			a.srv = append(a.srv, *x.ServerCPUus)
		}
		if x.OtherCores != nil {
			a.other = append(a.other, *x.OtherCores)
		}
	}
	for i := range rows {
		a := accs[[2]string{rows[i].Workload, rows[i].Server}]
		rows[i].RPS, _ = median(a.rps)
		rows[i].P50Ms, _ = median(a.p50)
		rows[i].P99Ms, _ = median(a.p99)
		rows[i].ServerCPU, _ = median(a.srv)
		rows[i].ClientCPU, _ = median(a.cli)
		rows[i].Other, _ = median(a.other)
		rows[i].RPSAll = a.rps
	}
	return rows
}

func printTable(w io.Writer, runs []runRecord, first string, ratio bool) []medianRow {
	rows := medians(runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tserver\treq/s\tp50\tp99\tserver CPU us/req\tload-tool CPU us/req\terrors\tfailed runs\tother load (cores)\treq/s of each run\t")
	byKey := map[[2]string]medianRow{}
	for _, r := range rows {
		byKey[[2]string{r.Workload, r.Server}] = r
	}
	var order []string
	for _, r := range rows {
		if !slices.Contains(order, r.Workload) {
			order = append(order, r.Workload)
		}
	}
	for _, wl := range order {
		for _, r := range rows {
			if r.Workload != wl {
				continue
			}
			var each []string
			for _, x := range r.RPSAll {
				each = append(each, fmt.Sprintf("%.0f", x))
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%.1f\t%.1f\t%d\t%d/%d\t%.2f\t%s\t\n", r.Workload, r.Server, r.RPS,
				fmtMs(r.P50Ms), fmtMs(r.P99Ms), r.ServerCPU, r.ClientCPU, r.Errors, r.Failed, r.Runs, r.Other, strings.Join(each, " "))
		}
		if ratio {
			a, b := byKey[[2]string{wl, first}], byKey[[2]string{wl, "etcd"}]
			fmt.Fprintf(tw, "%s\t%s/etcd\t%s\t%s\t%s\t%s\t%s\t\t\t\t\n", wl, first, ratioS(a.RPS, b.RPS),
				ratioS(a.P50Ms, b.P50Ms), ratioS(a.P99Ms, b.P99Ms), ratioS(a.ServerCPU, b.ServerCPU), ratioS(a.ClientCPU, b.ClientCPU))
		}
	}
	tw.Flush()
	return rows
}

func ratioS(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("x%.2f", a/b)
}

func printMemTable(w io.Writer, mems []memRecord, cf compareFlags) {
	fmt.Fprintf(w, "\n== memory and restart: %d keys of %d-byte values, VmRSS %v after the fill; restart = start of the process to the first linearizable get served (median of %d) ==\n",
		cf.fillKeys, cf.valSize, cf.settle, cf.restarts)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tfill req/s\tfill server CPU us/req\tVmRSS MiB\tpeak RSS MiB\tdata dir MiB\tkeys\tstop s\trestart s\teach restart s\tVmRSS at first serve MiB\tVmRSS settled after restart MiB\terror\t")
	for _, m := range mems {
		fr, fc := "-", "-"
		if m.Fill != nil {
			fr, fc = fmt.Sprintf("%.0f", m.Fill.RPS), optF(m.Fill.ServerCPUus)
		}
		rs, ok := median(m.RestartSec)
		rsS := "-"
		if ok {
			rsS = fmt.Sprintf("%.2f", rs)
		}
		var each, rssEach, settledEach []string
		for i, x := range m.RestartSec {
			each = append(each, fmt.Sprintf("%.2f", x))
			rssEach = append(rssEach, fmt.Sprintf("%.0f", m.RestartRSS[i]))
			settledEach = append(settledEach, fmt.Sprintf("%.0f", m.SettledRSS[i]))
		}
		errS := ""
		if m.Err != "" {
			errS = strings.SplitN(m.Err, "\n", 2)[0]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%d\t%.2f\t%s\t%s\t%s\t%s\t%s\t\n", m.Server, fr, fc, m.RSSMiB, m.HWMMiB, m.DiskMiB,
			m.KeysCounted, m.StopSec, rsS, strings.Join(each, " "), strings.Join(rssEach, " "), strings.Join(settledEach, " "), errS)
	}
	tw.Flush()
}

func (cf *compareFlags) clusterOn() bool { return cf.clusterMembers > 1 && cf.clusterRounds > 0 }

func printTargets(w io.Writer, rows []medianRow, mems []memRecord, cf compareFlags) {
	get := func(wl, s string) (medianRow, bool) {
		for _, r := range rows {
			if r.Workload == wl && r.Server == s && r.Runs > r.Failed {
				return r, true
			}
		}
		return medianRow{}, false
	}
	fmt.Fprintln(w, "\n== the project's targets (reported, not asserted) ==")
	line := func(what string, ok, known bool, detail string) {
		verdict := "met"
		if !known {
			verdict = "unknown"
		} else if !ok {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "  %-58s %-8s %s\n", what, verdict, detail)
	}
	d, ok1 := get("put", "detcd")
	e, ok2 := get("put", "etcd")
	line("put req/s (256 clients) >= etcd's", d.RPS >= e.RPS, ok1 && ok2, fmt.Sprintf("%.0f vs %.0f (%s)", d.RPS, e.RPS, ratioS(d.RPS, e.RPS)))
	line("put server CPU/req <= etcd's", d.ServerCPU <= e.ServerCPU, ok1 && ok2, fmt.Sprintf("%.1f vs %.1f us", d.ServerCPU, e.ServerCPU))
	d, ok1 = get("range-s", "detcd")
	e, ok2 = get("range-s", "etcd")
	line("serializable range req/s >= 2x etcd's", d.RPS >= 2*e.RPS, ok1 && ok2, fmt.Sprintf("%.0f vs %.0f (%s)", d.RPS, e.RPS, ratioS(d.RPS, e.RPS)))
	line("serializable range server CPU/req <= half of etcd's", d.ServerCPU <= e.ServerCPU/2, ok1 && ok2, fmt.Sprintf("%.1f vs %.1f us (%s)", d.ServerCPU, e.ServerCPU, ratioS(d.ServerCPU, e.ServerCPU)))
	if ok1 && ok2 && d.ServerCPU+d.ClientCPU > 0 {
		fmt.Fprintf(w, "  %-58s %-8s %s: the req/s ratio to expect when server and load tool together saturate the cores,\n",
			"  serializable range: (etcd srv+tool CPU)/(detcd srv+tool)", "", ratioS(e.ServerCPU+e.ClientCPU, d.ServerCPU+d.ClientCPU))
		fmt.Fprintf(w, "  %-58s %-8s as they do here (the tool runs on the same cores as the server)\n", "", "")
	}
	d, ok1 = get("range-l", "detcd")
	e, ok2 = get("range-l", "etcd")
	fmt.Fprintf(w, "  %-58s %-8s %.0f vs %.0f req/s (%s), %.1f vs %.1f us/req\n", "linearizable range (no target)", "", d.RPS, e.RPS, ratioS(d.RPS, e.RPS), d.ServerCPU, e.ServerCPU)
	if n := cf.clusterMembers; cf.clusterOn() {
		sfx := fmt.Sprintf("-%dm", n)
		d, ok1 = get("put"+sfx, "detcd")
		e, ok2 = get("put"+sfx, "etcd")
		line(fmt.Sprintf("%d-member put req/s >= 1.5x etcd's", n), d.RPS >= 1.5*e.RPS, ok1 && ok2,
			fmt.Sprintf("%.0f vs %.0f (%s), %.1f vs %.1f us/req summed over members", d.RPS, e.RPS, ratioS(d.RPS, e.RPS), d.ServerCPU, e.ServerCPU))
		for _, wl := range []string{"range-s", "range-l"} {
			d, _ = get(wl+sfx, "detcd")
			e, _ = get(wl+sfx, "etcd")
			fmt.Fprintf(w, "  %-58s %-8s %.0f vs %.0f req/s (%s), %.1f vs %.1f us/req\n", fmt.Sprintf("%d-member %s (no target)", n, wl), "", d.RPS, e.RPS, ratioS(d.RPS, e.RPS), d.ServerCPU, e.ServerCPU)
		}
	}
	for _, m := range mems {
		if m.Server != "detcd" {
			continue
		}
		ok := m.Err == "" && m.RSSMiB > 0
		what := "VmRSS after 1M keys x 256 B <= 370 MiB"
		if cf.fillKeys != 1_000_000 || cf.valSize != 256 {
			what = fmt.Sprintf("VmRSS <= 370 MiB (the target is for 1M keys; %d here)", cf.fillKeys)
		}
		line(what, m.RSSMiB <= 370, ok, fmt.Sprintf("%.0f MiB", m.RSSMiB))
		rs, rok := median(m.RestartSec)
		line("restart to serving <= 4 s", rs <= 4, rok, fmt.Sprintf("%.2f s", rs))
	}
}

func numCPU() int { return runtime.NumCPU() }

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return "Linux " + strings.TrimSpace(string(b))
}

func binVersion(bin string) string {
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return "version unknown"
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	shown := lines[:min(2, len(lines))]
	// detcd prints etcd's lines first, as etcd does, and its own after.
	for _, l := range lines[len(shown):] {
		if strings.HasPrefix(l, "detcd Version:") {
			shown = append(shown, l)
		}
	}
	return strings.Join(shown, "; ")
}

const compareHelp = `Runs detcd and etcd side by side on this machine, each run on a fresh data
dir and fresh 127.0.0.1 ports, single member:
  put      --clients puts of random keys
  range-s  serializable single-key gets
  range-l  linearizable single-key gets
in --rounds rounds, alternating servers run by run, and reports medians of
req/s, p50, p99, server CPU per request (/proc/PID/stat, sampled around the
load phase) and the load tool's own CPU per request. Then the same three
(put-3m, range-s-3m, range-l-3m) on a --cluster-members cluster started for
each run (all members on 127.0.0.1, ready once every member serves a
linearizable get), in --cluster-rounds rounds limited to --cluster-duration
each: connection i goes to member i mod N, as etcd's benchmark tool spreads
its connections over --endpoints, so a follower forwards its puts and
linearizable reads' read index to the leader through raft (both servers
do); --cluster-writes leader puts through the leader alone. The server CPU
is summed over the members. Then, with --extra,
once per server, each on a fresh server:
  watch       'detcd-bench watch': --watch-watchers watchers on 1 and 100
              streams, one writer putting --watch-total events fast
  watch-rate  the same at --watch-rate puts/s for --watch-rate-time
  lease       'detcd-bench lease': keep-alive throughput, then mass expiry
  compact     'detcd-bench compact': a fill of --compact-revisions over 100k
              keys, then 1000 puts/s while they are compacted (physical) and
              the store defragmented: each phase's put p99.9 and max
Then, per server: fill
--fill-keys keys, wait --settle, read VmRSS, stop with SIGTERM and time
--restarts restarts until a linearizable get is served (VmRSS read then
and again --settle later). Then, per server and --join-rounds round, the
join scenario: one member filled with --join-keys keys of 1 KiB, "member
add" (a voter, or --join-learner), the new member started with
--initial-cluster-state existing, and the time from the add until its
revision reaches the leader's, its peak RSS (VmHWM) and CPU, the leader's
CPU, peak RSS and term before and after, and how many of the puts made on
the leader every 200 ms meanwhile failed.`
