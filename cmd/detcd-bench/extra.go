package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// The compare driver's optional extra workloads (--extra): the watch and
// lease commands, each once per server (not per round) on a fresh server.

// extraWorkloads are the names --extra accepts, in the order they run.
var extraWorkloads = []string{"watch", "watch-rate", "lease", "compact"}

// extraRecord is one extra run: one server, one workload, one or more
// summary lines of the load tool.
type extraRecord struct {
	Server    string           `json:"server"`
	Workload  string           `json:"workload"`
	StartSec  float64          `json:"start_to_ready_s"`
	Watch     []*WatchResult   `json:"watch,omitempty"`
	KeepAlive *KeepAliveResult `json:"keepalive,omitempty"`
	Expiry    *ExpiryResult    `json:"expiry,omitempty"`
	Compact   *CompactResult   `json:"compact,omitempty"`
	Err       string           `json:"error,omitempty"`
}

func (r *extraRecord) failed() bool {
	if r.Err != "" {
		return true
	}
	for _, w := range r.Watch {
		if w.failed() {
			return true
		}
	}
	if r.KeepAlive != nil && r.KeepAlive.Errors > 0 {
		return true
	}
	if x := r.Expiry; x != nil && (x.Remaining > 0 || x.WriteErrors > 0 || x.ExpiredEarly > 0 || x.PollErrors > 0) {
		return true
	}
	if r.Compact != nil && r.Compact.WriteErrors > 0 {
		return true
	}
	return false
}

func parseExtra(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !slices.Contains(extraWorkloads, f) {
			return nil, fmt.Errorf("unknown extra workload %q (%s)", f, strings.Join(extraWorkloads, ", "))
		}
		out = append(out, f)
	}
	return out, nil
}

func (cf *compareFlags) extraArgs(wl string) []string {
	var args []string
	switch wl {
	case "watch":
		args = []string{"watch", "--watchers", strconv.Itoa(cf.watchWatchers), "--streams", cf.watchStreams,
			"--total", strconv.Itoa(cf.watchTotal), "--duration", cf.duration.String()}
	case "watch-rate":
		args = []string{"watch", "--watchers", strconv.Itoa(cf.watchWatchers), "--streams", cf.watchStreams,
			"--rate", strconv.FormatFloat(cf.watchRate, 'f', -1, 64), "--writers", "4",
			"--total", strconv.Itoa(int(cf.watchRate * cf.watchRateTime.Seconds())), "--duration", (cf.watchRateTime + 10*time.Second).String()}
	case "lease":
		args = []string{"lease", "--leases", strconv.Itoa(cf.leases), "--ka-duration", cf.kaDuration.String()}
	case "compact":
		args = []string{"compact", "--revisions", strconv.Itoa(cf.compactRevisions)}
	}
	return append(args, strings.Fields(cf.extraFlags[wl])...)
}

// runToolLines runs this binary's load command against in, with
// --server-pid and --json, and returns its JSON lines. Exit status 3 (some
// requests failed) is not an error.
func (cf *compareFlags) runToolLines(in *instance, logName string, args ...string) ([][]byte, error) {
	args = append(args, "--endpoints", in.endpoint(), "--server-pid", strconv.Itoa(in.pid()), "--json")
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
	var lines [][]byte
	for _, l := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			lines = append(lines, l)
		}
	}
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
		return lines, fmt.Errorf("load tool: %v (see %s)", err, logName)
	}
	return lines, nil
}

// runExtra runs one extra workload on a fresh server.
func (cf *compareFlags) runExtra(name, bin, wl string) extraRecord {
	rec := extraRecord{Server: name, Workload: wl}
	base := filepath.Join(cf.work, fmt.Sprintf("%s-%s", name, wl))
	in, err := newInstance(name, bin, base)
	if err == nil {
		err = in.start()
	}
	if err == nil {
		t0 := time.Now()
		if err = in.ready(cf.readyTimeout); err == nil {
			rec.StartSec = time.Since(t0).Seconds()
			var lines [][]byte
			lines, err = cf.runToolLines(in, base+".load.log", cf.extraArgs(wl)...)
			for _, l := range lines {
				var head struct{ Op string }
				if jerr := json.Unmarshal(l, &head); jerr != nil {
					err = errors.Join(err, fmt.Errorf("load tool output %q: %v", l, jerr))
					continue
				}
				var jerr error
				switch head.Op {
				case "watch":
					var w WatchResult
					jerr = json.Unmarshal(l, &w)
					rec.Watch = append(rec.Watch, &w)
				case "lease-keepalive":
					rec.KeepAlive = &KeepAliveResult{}
					jerr = json.Unmarshal(l, rec.KeepAlive)
				case "lease-expiry":
					rec.Expiry = &ExpiryResult{}
					jerr = json.Unmarshal(l, rec.Expiry)
				case "compact":
					rec.Compact = &CompactResult{}
					jerr = json.Unmarshal(l, rec.Compact)
				default:
					jerr = fmt.Errorf("unknown op %q", head.Op)
				}
				if jerr != nil {
					err = errors.Join(err, jerr)
				}
			}
		}
		if !in.alive() && err == nil {
			err = fmt.Errorf("server exited during the run: %v", in.waitErr)
		}
		if _, serr := in.stop(); serr != nil && err == nil && !isTermExit(serr) {
			err = fmt.Errorf("server stop: %v", serr)
		}
	}
	if err != nil {
		rec.Err = err.Error()
		if in != nil {
			rec.Err += "\n  server log tail:\n" + indent(in.logTail(8))
		}
	}
	if !cf.keepData {
		os.RemoveAll(base)
	}
	return rec
}

func printExtra(w io.Writer, r extraRecord) {
	for _, x := range r.Watch {
		fmt.Fprintf(w, "%-10s %-6s %s\n", r.Workload, r.Server, x.text())
	}
	if r.KeepAlive != nil {
		fmt.Fprintf(w, "%-10s %-6s %s\n", r.Workload, r.Server, r.KeepAlive.text())
	}
	if r.Expiry != nil {
		fmt.Fprintf(w, "%-10s %-6s %s\n", r.Workload, r.Server, r.Expiry.text())
	}
	if r.Compact != nil {
		fmt.Fprintf(w, "%-10s %-6s %s\n", r.Workload, r.Server, r.Compact.text())
	}
	if r.Err != "" {
		fmt.Fprintf(w, "%-10s %-6s ERROR: %s\n", r.Workload, r.Server, r.Err)
	}
}

func printExtraTables(w io.Writer, recs []extraRecord, cf compareFlags) {
	var watch, lease, compact []extraRecord
	for _, r := range recs {
		switch r.Workload {
		case "lease":
			lease = append(lease, r)
		case "compact":
			compact = append(compact, r)
		default:
			watch = append(watch, r)
		}
	}
	printCompactTable(w, compact, cf)
	if len(watch) > 0 {
		fmt.Fprintf(w, "\n== watch: %d watchers on one key; watch = one writer as fast as it can (%d puts), watch-rate = %.0f puts/s for %v; latency from put sent to event received; one run each ==\n",
			cf.watchWatchers, cf.watchTotal, cf.watchRate, cf.watchRateTime)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "workload\tserver\tstreams\tevents/s\tp50\tp90\tp99\tmax\tevents/response\tputs/s\tmissed\tduplicate\tout of order\tserver CPU us/event\tload-tool CPU us/event\tother load (cores)\terror\t")
		for _, r := range watch {
			errS := ""
			if r.Err != "" {
				errS = strings.SplitN(r.Err, "\n", 2)[0]
			}
			if len(r.Watch) == 0 {
				fmt.Fprintf(tw, "%s\t%s\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t%s\t\n", r.Workload, r.Server, errS)
			}
			for _, x := range r.Watch {
				epr := 0.0
				if x.Responses > 0 {
					epr = float64(x.Events) / float64(x.Responses)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%.2f\t%.0f\t%d\t%d\t%d\t%s\t%.2f\t%s\t%s\t\n", r.Workload, r.Server, x.Streams,
					x.EventsPerSec, fmtMs(x.P50Ms), fmtMs(x.P90Ms), fmtMs(x.P99Ms), fmtMs(x.MaxMs), epr, x.PutsPerSec,
					x.Missed, x.Duplicate, x.OutOfOrder, optF2(x.ServerCPUus), x.ClientCPUus, optF2(x.OtherCores), errS)
			}
		}
		tw.Flush()
	}
	if len(lease) > 0 {
		fmt.Fprintf(w, "\n== lease: %d leases; keep-alives over pipelined LeaseKeepAlive streams for %v; then expiry of %d leases with a key each while a writer puts; one run each ==\n",
			cf.leases, cf.kaDuration, cf.leases)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "server\tgrants/s\tkeep-alives/s\tp50\tp99\tserver CPU us/ka\terrors\tall keys gone after deadline s\texpired/s\tput p50 storm\tput p99 storm\tput max storm\tput p99 before\tserver cores storm\terror\t")
		for _, r := range lease {
			k, x := r.KeepAlive, r.Expiry
			cols := []string{r.Server}
			if k != nil {
				cols = append(cols, fmt.Sprintf("%.0f", k.GrantsPerSec), fmt.Sprintf("%.0f", k.PerSec), fmtMs(k.P50Ms), fmtMs(k.P99Ms), optF(k.ServerCPUus), strconv.FormatInt(k.Errors, 10))
			} else {
				cols = append(cols, "-", "-", "-", "-", "-", "-")
			}
			if x != nil {
				gone := fmt.Sprintf("%+.2f", x.AllGoneSec)
				if x.Remaining > 0 {
					gone = fmt.Sprintf("%d left", x.Remaining)
				}
				cols = append(cols, gone, fmt.Sprintf("%.0f", x.RevokesPerSec), fmtMs(x.StormP50Ms), fmtMs(x.StormP99Ms), fmtMs(x.StormMaxMs), fmtMs(x.BaseP99Ms), optF2(x.StormSrvCores))
			} else {
				cols = append(cols, "-", "-", "-", "-", "-", "-", "-")
			}
			errS := ""
			if r.Err != "" {
				errS = strings.SplitN(r.Err, "\n", 2)[0]
			}
			cols = append(cols, errS)
			fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t")
		}
		tw.Flush()
	}
}

// printCompactTable prints the compact runs: each phase's put latency, one
// row per server and phase.
func printCompactTable(w io.Writer, recs []extraRecord, cf compareFlags) {
	if len(recs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n== compact: a fill of %d revisions over 100k keys, then 1000 puts/s while they are compacted (physical) and the store defragmented; put latency by the phase it was sent in; one run each ==\n",
		cf.compactRevisions)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tphase\tputs\tp50\tp99\tp99.9\tmax\tphase s\tfill puts/s\tfill server CPU us/put\terror\t")
	for _, r := range recs {
		errS := ""
		if r.Err != "" {
			errS = strings.SplitN(r.Err, "\n", 2)[0]
		}
		c := r.Compact
		if c == nil {
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t\t\t\t%s\t\n", r.Server, errS)
			continue
		}
		for _, p := range c.Phases {
			secs := ""
			switch p.Phase {
			case "compact":
				secs = fmt.Sprintf("%.2f", c.CompactSec)
			case "defrag":
				secs = fmt.Sprintf("%.2f", c.DefragSec)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t\n", r.Server, p.Phase, p.Puts,
				fmtMs(p.P50Ms), fmtMs(p.P99Ms), fmtMs(p.P999Ms), fmtMs(p.MaxMs), secs, c.FillPerSec, optF(c.FillServerCPUus), errS)
		}
	}
	tw.Flush()
}
