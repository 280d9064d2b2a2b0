package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// The compare driver's join scenario (issue 18): one member filled with
// --join-keys keys of 1 KiB, then a member added (`member add`, a voter
// unless --join-learner) and started with --initial-cluster-state
// existing, timed from the add until its revision reaches the leader's,
// while a put goes to the leader every joinProbeEvery.

const (
	// joinValueBytes is the fill's value size, as issue 18 measured.
	joinValueBytes = 1024
	// joinQuotaBytes is the quota both servers get, etcd's largest, so
	// that a large fill never raises the NOSPACE alarm.
	joinQuotaBytes = 8 << 30
	// joinPollEvery is how often the revisions and RSS are sampled.
	joinPollEvery = 200 * time.Millisecond
	// joinProbeEvery is the pace of the puts on the leader meanwhile.
	joinProbeEvery = 200 * time.Millisecond
	// joinAddMax bounds the retries of the member add (a leader refuses
	// it until it has been in touch with a quorum for a while).
	joinAddMax = 30 * time.Second
	// joinToken is the cluster token of the join runs.
	joinToken = "bench-join"
)

// joinRecord is one join run.
type joinRecord struct {
	Server  string `json:"server"`
	Round   int    `json:"round"`
	Keys    int    `json:"keys"`
	Learner bool   `json:"learner"`
	// LeaderDirMiB is the leader's data dir when the member is added.
	LeaderDirMiB float64 `json:"leader_data_dir_mib"`
	FillSec      float64 `json:"fill_s"`
	// JoinSec is from the member add until the new member's revision
	// reached the leader's; 0 if it never did within --join-timeout.
	JoinSec float64 `json:"join_s"`
	// JoinerHWMMiB is the new member's peak RSS (VmHWM) then.
	JoinerHWMMiB float64 `json:"joiner_peak_rss_mib"`
	JoinerCPUSec float64 `json:"joiner_cpu_s"`
	// LeaderRSSMiB is the leader's VmRSS before the add; LeaderCPUSec its
	// CPU during the join, LeaderPeakMiB its highest VmRSS sampled then.
	LeaderRSSMiB  float64 `json:"leader_rss_before_mib"`
	LeaderCPUSec  float64 `json:"leader_cpu_s"`
	LeaderPeakMiB float64 `json:"leader_peak_rss_mib"`
	TermBefore    uint64  `json:"leader_term_before"`
	TermAfter     uint64  `json:"leader_term_after"`
	Puts          int     `json:"probe_puts"`
	PutsFailed    int     `json:"probe_puts_failed"`
	// StallSec is the longest time the leader took no write: the longest
	// gap between the probe's start, its successful puts and its end.
	StallSec float64 `json:"longest_write_stall_s"`
	Err      string  `json:"error,omitempty"`
}

func (r *joinRecord) failed() bool { return r.Err != "" || r.JoinSec == 0 }

// joinTest runs one join on a fresh pair of members of server name.
func (cf *compareFlags) joinTest(name, bin string, round int, stdout io.Writer) joinRecord {
	rec := joinRecord{Server: name, Round: round, Keys: cf.joinKeys, Learner: cf.joinLearner}
	base := filepath.Join(cf.work, fmt.Sprintf("%s-join-%d", name, round))
	var ins []*instance
	defer func() {
		for _, in := range ins {
			in.stop()
		}
		if !cf.keepData {
			os.RemoveAll(base + "-m0")
			os.RemoveAll(base + "-m1")
		}
	}()
	fail := func(err error) joinRecord {
		rec.Err = err.Error()
		for _, in := range ins {
			rec.Err += "\n  " + in.member + " log tail:\n" + indent(in.logTail(8))
		}
		fmt.Fprintf(stdout, "join    %-6s ERROR: %s\n", name, rec.Err)
		return rec
	}
	m0, err := cf.joinMember(name, bin, base, "m0", nil)
	if err != nil {
		return fail(err)
	}
	ins = append(ins, m0)
	if err := m0.start(); err != nil {
		return fail(err)
	}
	if err := m0.ready(cf.readyTimeout); err != nil {
		return fail(err)
	}
	fill, err := cf.runLoadTool([]string{m0.endpoint()}, pidList{m0.pid()}, base+".load.log", "fill", "--keys", strconv.Itoa(cf.joinKeys),
		"--val-size", strconv.Itoa(joinValueBytes), "--clients", strconv.Itoa(cf.clients), "--conns", strconv.Itoa(cf.conns), "--duration", "60m")
	if err != nil {
		return fail(err)
	}
	rec.FillSec = fill.Seconds
	rec.LeaderDirMiB = float64(dirSize(m0.dir)) / (1 << 20)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m0.endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fail(err)
	}
	defer cli.Close()
	st0, err := endpointStatus(cli, m0.endpoint())
	if err != nil {
		return fail(err)
	}
	rec.TermBefore = st0.RaftTerm
	if rss, err := procStatusKB(m0.pid(), "VmRSS"); err == nil {
		rec.LeaderRSSMiB = float64(rss) / 1024
	}

	m1, err := cf.joinMember(name, bin, base, "m1", m0)
	if err != nil {
		return fail(err)
	}
	cpu0, _ := procCPU(m0.pid())
	t0 := time.Now()
	if err := addMember(cli, m1.peerURL(), cf.joinLearner); err != nil {
		return fail(err)
	}
	ins = append(ins, m1)
	if err := m1.start(); err != nil {
		return fail(err)
	}
	probe := startJoinProbe(cli)
	err = rec.waitCaughtUp(cli, m0, m1, t0, cf.joinTimeout)
	rec.Puts, rec.PutsFailed, rec.StallSec = probe.stop()
	cpu1, _ := procCPU(m0.pid())
	rec.LeaderCPUSec = (cpu1 - cpu0).Seconds()
	if st, serr := endpointStatus(cli, m0.endpoint()); serr == nil {
		rec.TermAfter = st.RaftTerm
	}
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "join    %-6s %s\n", name, rec.line())
	return rec
}

// joinMember prepares member name of a join run; the second one (m0 given)
// joins m0's cluster.
func (cf *compareFlags) joinMember(server, bin, base, name string, m0 *instance) (*instance, error) {
	in, err := newInstance(server, bin, base+"-"+name)
	if err != nil {
		return nil, err
	}
	in.member, in.token = name, joinToken
	in.extra = []string{"--quota-backend-bytes", strconv.Itoa(joinQuotaBytes)}
	in.initialCluster = name + "=" + in.peerURL()
	if m0 != nil {
		in.initialCluster = m0.member + "=" + m0.peerURL() + "," + in.initialCluster
		in.state = "existing"
	}
	return in, nil
}

// addMember adds a member with peerURL through cli, retrying for
// joinAddMax while the leader refuses it.
func addMember(cli *clientv3.Client, peerURL string, learner bool) error {
	deadline := time.Now().Add(joinAddMax)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var err error
		if learner {
			_, err = cli.MemberAddAsLearner(ctx, []string{peerURL})
		} else {
			_, err = cli.MemberAdd(ctx, []string{peerURL})
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("member add: %w", err)
		}
		time.Sleep(time.Second)
	}
}

func endpointStatus(cli *clientv3.Client, ep string) (*clientv3.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return cli.Status(ctx, ep)
}

// waitCaughtUp polls until m1's revision reaches the leader's (sampled
// first, so m1 is at least where the leader was a moment before), and
// records the time, m1's peak RSS and CPU, and the leader's peak RSS.
func (r *joinRecord) waitCaughtUp(cli *clientv3.Client, m0, m1 *instance, t0 time.Time, timeout time.Duration) error {
	for time.Since(t0) < timeout {
		if !m1.alive() {
			return fmt.Errorf("the new member exited: %v", m1.waitErr)
		}
		if rss, err := procStatusKB(m0.pid(), "VmRSS"); err == nil {
			r.LeaderPeakMiB = max(r.LeaderPeakMiB, float64(rss)/1024)
		}
		s0, err0 := endpointStatus(cli, m0.endpoint())
		s1, err1 := endpointStatus(cli, m1.endpoint())
		if err0 == nil && err1 == nil && s0.Header.Revision > 1 && s1.Header.Revision >= s0.Header.Revision {
			r.JoinSec = time.Since(t0).Seconds()
			hwm, _ := procStatusKB(m1.pid(), "VmHWM")
			cpu, _ := procCPU(m1.pid())
			r.JoinerHWMMiB, r.JoinerCPUSec = float64(hwm)/1024, cpu.Seconds()
			return nil
		}
		time.Sleep(joinPollEvery)
	}
	hwm, _ := procStatusKB(m1.pid(), "VmHWM")
	r.JoinerHWMMiB = float64(hwm) / 1024
	return fmt.Errorf("the new member did not catch up within %v", timeout)
}

func (r *joinRecord) line() string {
	return fmt.Sprintf("%d keys, leader data dir %.0f MiB: caught up %.2fs after the member add (%s); new member peak RSS %.0f MiB, CPU %.1fs; leader CPU %.1fs, RSS %.0f MiB before, peak %.0f MiB, term %d -> %d; %d of %d puts on the leader failed, longest write stall %.1fs",
		r.Keys, r.LeaderDirMiB, r.JoinSec, r.kind(), r.JoinerHWMMiB, r.JoinerCPUSec, r.LeaderCPUSec, r.LeaderRSSMiB, r.LeaderPeakMiB, r.TermBefore, r.TermAfter, r.PutsFailed, r.Puts, r.StallSec)
}

func (r *joinRecord) kind() string {
	if r.Learner {
		return "learner"
	}
	return "voter"
}

// joinProbe puts on the leader every joinProbeEvery until stopped.
type joinProbe struct {
	done, finished chan struct{}
	puts, failed   int
	// lastOK is when the last put succeeded (the start before any);
	// stall is the longest gap seen between two such times.
	lastOK time.Time
	stall  time.Duration
}

func startJoinProbe(cli *clientv3.Client) *joinProbe {
	p := &joinProbe{done: make(chan struct{}), finished: make(chan struct{}), lastOK: time.Now()}
	go func() {
		defer close(p.finished)
		tick := time.NewTicker(joinProbeEvery)
		defer tick.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, err := cli.Put(ctx, "join-probe", strconv.Itoa(p.puts)); err != nil {
				p.failed++
			} else {
				p.succeeded(time.Now())
			}
			cancel()
			p.puts++
		}
	}()
	return p
}

// succeeded records a put that succeeded at t.
func (p *joinProbe) succeeded(t time.Time) {
	p.stall = max(p.stall, t.Sub(p.lastOK))
	p.lastOK = t
}

func (p *joinProbe) stop() (puts, failed int, stallSec float64) {
	close(p.done)
	<-p.finished
	p.succeeded(time.Now())
	return p.puts, p.failed, p.stall.Seconds()
}

func printJoinTable(w io.Writer, recs []joinRecord, cf compareFlags) {
	fmt.Fprintf(w, "\n== join: %d keys of %d bytes on one member, then `member add` (%s) and the new member started; join = the add to the new member's revision reaching the leader's, with a put on the leader every %v ==\n",
		cf.joinKeys, joinValueBytes, map[bool]string{false: "voter", true: "--learner"}[cf.joinLearner], joinProbeEvery)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tround\tleader data dir MiB\tjoin s\tnew member peak RSS MiB\tnew member CPU s\tleader CPU s\tleader RSS before MiB\tleader peak RSS MiB\tleader term\tputs failed\twrite stall s\terror\t")
	for _, r := range recs {
		errS := ""
		if r.Err != "" {
			errS = strings.SplitN(r.Err, "\n", 2)[0]
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.2f\t%.0f\t%.1f\t%.1f\t%.0f\t%.0f\t%d -> %d\t%d/%d\t%.1f\t%s\t\n", r.Server, r.Round, r.LeaderDirMiB, r.JoinSec,
			r.JoinerHWMMiB, r.JoinerCPUSec, r.LeaderCPUSec, r.LeaderRSSMiB, r.LeaderPeakMiB, r.TermBefore, r.TermAfter, r.PutsFailed, r.Puts, r.StallSec, errS)
	}
	tw.Flush()
}
