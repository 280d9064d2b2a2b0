package tests

// TestChaos: a 3-member cluster of real detcd binaries on loopback, a
// client workload, and faults from a seeded schedule: kill -9 and
// restart, SIGSTOP/SIGCONT, partitions through proxies in front of the
// peer listeners (isolating a member, cutting a pair, one-way cuts), a
// leader moved, and a member replaced through the Cluster API. Then every
// fault ends and the checks run: the members converge to the same
// revision and HashKV, the history is linearizable (porcupine), no
// acknowledged write is lost, serializable reads return what was written,
// and every watch saw each revision once and in order.
//
// Each member has its own loopback IP (127.0.0.11, .12, ...; Linux routes
// all of 127/8 to lo) and runs with SetMemberLocalAddr, so its peer
// connections come from that IP and the proxies know who is calling.
//
// The schedule comes from -chaos.seed; timing does not, so a rerun with
// the same seed injects the same faults in the same order at the same
// nominal times, against a run that differs in its details.
//
//	cd tests && go test -count=1 -run 'TestChaos$' -v -chaos.seed=N -chaos.duration=5m

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	chaosSeed     = flag.Uint64("chaos.seed", 0, "TestChaos: seed of the fault schedule and the workload (0: a fresh one)")
	chaosDuration = flag.Duration("chaos.duration", 30*time.Second, "TestChaos: how long faults are injected")
	chaosWorkers  = flag.Int("chaos.workers", 24, "TestChaos: concurrent clients")
	chaosKeys     = flag.Int("chaos.keys", 0, "TestChaos: keys the workload uses (0: one per 2 seconds of -chaos.duration, at least 64)")
	chaosBin      = flag.String("chaos.bin", "", "TestChaos: a detcd binary to run instead of the one built from ..")
	chaosFaults   = flag.String("chaos.faults", "all", "TestChaos: the kinds of fault to inject, comma-separated: kill,pause,isolate,bridge,oneway,move-leader,replace (or all)")
	chaosCheck    = flag.Duration("chaos.check-timeout", 0, "TestChaos: bound on the linearizability check (0: 1 minute, or 2 seconds per second of -chaos.duration if more); past it the verdict is unknown")
)

const (
	chaosPrefix    = "chaos/"
	chaosOpTimeout = 2 * time.Second
	chaosWarmup    = 2 * time.Second // workload before the first fault
	chaosWatchers  = 3
	chaosRate      = 150.0            // client operations a second, all workers together
	chaosLiveness  = 20 * time.Second // bound on getting writes through every member after healing
	chaosConverge  = 30 * time.Second // bound on the members agreeing after that
	// chaosReplaceNominal is the time the schedule keeps free for a
	// member replacement; one that takes longer pushes the rest back.
	chaosReplaceNominal = 8 * time.Second
	chaosReplaceMax     = 30 * time.Second
)

// ---- the schedule ----

type faultKind string

const (
	fKill       faultKind = "kill"        // kill -9, restart at the end
	fPause      faultKind = "pause"       // SIGSTOP, SIGCONT at the end
	fIsolate    faultKind = "isolate"     // every link to and from one member cut: a 1|2 split (the leader's, or a follower's)
	fBridge     faultKind = "bridge"      // the links between two members cut both ways; the third sees both
	fOneWay     faultKind = "oneway"      // one directed link cut
	fMoveLeader faultKind = "move-leader" // Maintenance.MoveLeader to a follower
	fReplace    faultKind = "replace"     // MemberRemove one, MemberAdd a fresh learner, start it, promote it
)

// A target is resolved when the fault starts: "leader" is whoever Status
// says leads then, "follower" any other member, "any" any member.
type fault struct {
	n        int
	at, dur  time.Duration // nominal, from the workload's start
	kind     faultKind
	target   string
	target2  string // oneway: the receiving end; bridge: the other end
	mode     cutMode
	resolved string
	undo     func()
}

func (f *fault) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d +%5.1fs %s %s", f.n, f.at.Seconds(), f.kind, f.target)
	switch f.kind {
	case fOneWay:
		fmt.Fprintf(&b, "->%s", f.target2)
	case fBridge:
		fmt.Fprintf(&b, "<->%s", f.target2)
	}
	if f.kind == fIsolate || f.kind == fBridge || f.kind == fOneWay {
		fmt.Fprintf(&b, " (%s)", f.mode)
	}
	if f.kind != fMoveLeader && f.kind != fReplace {
		fmt.Fprintf(&b, " for %.1fs", f.dur.Seconds())
	}
	return b.String()
}

// genSchedule draws the faults of a run of length d. Replacements are
// spread over the run (one per minute, at least one if the run is 20 s or
// longer) and have the cluster to themselves; other faults follow one
// another with short gaps, and a third of them overlap the next one.
func genSchedule(rng *rand.Rand, d time.Duration, allowed map[faultKind]bool) []*fault {
	var replaces []time.Duration
	if n := int(d / time.Minute); d >= 20*time.Second && allowed[fReplace] {
		n = max(n, 1)
		for i := range n {
			slot := d / time.Duration(n)
			at := time.Duration(i)*slot + slot/4 + time.Duration(rng.Int64N(int64(slot/3)))
			replaces = append(replaces, at.Round(100*time.Millisecond))
		}
	}
	ms := func(lo, hi int) time.Duration {
		return time.Duration(lo+rng.IntN(hi-lo+1)) * time.Millisecond
	}
	weights := []struct {
		kind faultKind
		w    int
	}{{fKill, 24}, {fPause, 18}, {fIsolate, 20}, {fBridge, 12}, {fOneWay, 20}, {fMoveLeader, 6}}
	total := 0
	for _, w := range weights {
		if allowed[w.kind] {
			total += w.w
		}
	}
	roles := []string{"leader", "follower", "any"}
	var out []*fault
	t := chaosWarmup
	lastEnd := time.Duration(0)
	ri := 0
	for t < d-time.Second {
		if ri < len(replaces) && t+5*time.Second > replaces[ri] {
			at := max(replaces[ri], lastEnd+ms(300, 1000))
			out = append(out, &fault{at: at, dur: chaosReplaceNominal, kind: fReplace, target: roles[rng.IntN(3)]})
			t = at + chaosReplaceNominal + ms(500, 1500)
			lastEnd = t
			ri++
			continue
		}
		if total == 0 {
			t += time.Second
			continue
		}
		f := &fault{at: t.Round(100 * time.Millisecond), dur: ms(500, 4000).Round(100 * time.Millisecond)}
		r := rng.IntN(total)
		for _, w := range weights {
			if !allowed[w.kind] {
				continue
			}
			if r < w.w {
				f.kind = w.kind
				break
			}
			r -= w.w
		}
		switch f.kind {
		case fKill, fPause, fIsolate:
			f.target = roles[rng.IntN(3)]
		case fBridge:
			f.target, f.target2 = "leader", "follower"
			if rng.IntN(2) == 0 {
				f.target = "follower"
			}
		case fOneWay:
			f.target, f.target2 = "leader", "follower"
			if rng.IntN(2) == 0 {
				f.target, f.target2 = "follower", "leader"
			}
		case fMoveLeader:
			f.target, f.dur = "leader", 0
		}
		f.mode = cutRefuse
		if rng.IntN(2) == 0 {
			f.mode = cutDrop
		}
		if f.at+f.dur > d {
			f.dur = max(d-f.at, 300*time.Millisecond)
		}
		out = append(out, f)
		lastEnd = max(lastEnd, f.at+f.dur)
		if f.dur > 0 && rng.IntN(3) == 0 {
			t = f.at + time.Duration(rng.Int64N(int64(f.dur))) // the next one overlaps this one
		} else {
			t = f.at + f.dur + ms(200, 1500)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at < out[j].at })
	for i, f := range out {
		f.n = i + 1
	}
	return out
}

// parseFaults reads -chaos.faults.
func parseFaults(s string) (map[faultKind]bool, error) {
	all := []faultKind{fKill, fPause, fIsolate, fBridge, fOneWay, fMoveLeader, fReplace}
	out := map[faultKind]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "all":
			for _, k := range all {
				out[k] = true
			}
		case slices.Contains(all, faultKind(f)):
			out[faultKind(f)] = true
		case f != "":
			return nil, fmt.Errorf("-chaos.faults: unknown fault %q (want some of %v, or all)", f, all)
		}
	}
	return out, nil
}

// ---- the cluster ----

type chaosMember struct {
	name       string
	ip         string
	clientPort int
	peerPort   int
	proxy      *chaosProxy
	dataDir    string
	args       []string
	id         uint64
	cli        *clientv3.Client // the workload's client: this member only

	// Changed only by the test's goroutine.
	proc    *memberProc
	down    bool
	paused  bool
	removed bool
	starts  int
}

type memberProc struct {
	*proc
	expected atomic.Bool // set before the test stops it, or before it is removed
}

func (m *chaosMember) endpoint() string { return fmt.Sprintf("http://%s:%d", m.ip, m.clientPort) }
func (m *chaosMember) peerURL() string  { return "http://" + m.proxy.addr() }

type chaosCluster struct {
	t     *testing.T
	bin   string
	token string
	rng   *rand.Rand // run-time choices of the fault goroutine
	t0    time.Time  // the workload's start
	dir   string

	members []*chaosMember // the current members, in slot order
	all     []*chaosMember // every member ever started
	view    atomic.Pointer[[]*chaosMember]
	cuts    map[[2]*chaosMember]int
	nextIP  int
	admin   *clientv3.Client // Status, HashKV: these take an endpoint
	extra   []string         // flags every member gets

	watchClients []*clientv3.Client
	stopping     atomic.Bool // the test is over: processes die at its cleanup

	mu       sync.Mutex
	failures []string
	faultLog []string
	injected map[faultKind]int
	skipped  int
}

func (c *chaosCluster) since() time.Duration { return time.Since(c.t0) }

func (c *chaosCluster) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.failures = append(c.failures, msg)
	c.mu.Unlock()
	c.t.Logf("+%5.1fs FAILURE: %s", c.since().Seconds(), msg)
}

func (c *chaosCluster) logf(format string, args ...any) {
	msg := fmt.Sprintf("+%5.1fs ", c.since().Seconds()) + fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.faultLog = append(c.faultLog, msg)
	c.mu.Unlock()
	c.t.Log(msg)
}

func newClientv3(endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
	})
}

// newMember makes a member's ports, proxy, data dir and client; it does
// not start it.
func (c *chaosCluster) newMember() *chaosMember {
	t := c.t
	n := len(c.all) + 1
	ip := fmt.Sprintf("127.0.0.%d", c.nextIP)
	c.nextIP++
	m := &chaosMember{name: fmt.Sprintf("m%d", n), ip: ip, dataDir: filepath.Join(c.dir, fmt.Sprintf("m%d", n))}
	m.clientPort, m.peerPort = freePortOn(t, ip), freePortOn(t, ip)
	proxyAddr := net.JoinHostPort(ip, fmt.Sprint(freePortOn(t, ip)))
	p, err := newChaosProxy(proxyAddr, net.JoinHostPort(ip, fmt.Sprint(m.peerPort)))
	if err != nil {
		t.Fatalf("proxy for %s: %v", m.name, err)
	}
	m.proxy = p
	t.Cleanup(p.close)
	cli, err := newClientv3([]string{m.endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	m.cli = cli
	c.all = append(c.all, m)
	return m
}

// setArgs sets a member's command line; initial is --initial-cluster.
func (c *chaosCluster) setArgs(m *chaosMember, initial, state string) {
	client := m.endpoint()
	m.args = append([]string{
		"--name", m.name,
		"--data-dir", m.dataDir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", fmt.Sprintf("http://%s:%d", m.ip, m.peerPort),
		"--initial-advertise-peer-urls", m.peerURL(),
		"--initial-cluster", initial,
		"--initial-cluster-state", state,
		"--initial-cluster-token", c.token,
		"--feature-gates", "SetMemberLocalAddr=true",
		"--log-level", "info",
	}, c.extra...)
}

// start starts (or restarts) a member's process, without waiting.
func (c *chaosCluster) start(m *chaosMember) {
	mp := &memberProc{proc: startProc(c.t, m.name, c.bin, m.args...)}
	m.proc, m.down, m.paused = mp, false, false
	m.starts++
	// Cleanups run last first: this one, before any process is killed.
	c.t.Cleanup(func() { c.stopping.Store(true) })
	go func() {
		<-mp.done
		if !mp.expected.Load() && !c.stopping.Load() {
			c.fail("%s (pid %d) exited by itself: %v; its log ends with:\n%s", m.name, mp.cmd.Process.Pid, mp.err, lastLines(mp.stderr.String(), 15))
		}
	}()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (c *chaosCluster) kill(m *chaosMember) {
	if m.proc != nil && !m.down {
		m.proc.expected.Store(true)
		m.proc.kill()
	}
	m.down, m.paused = true, false
}

func (c *chaosCluster) signal(m *chaosMember, sig syscall.Signal) {
	if err := m.proc.cmd.Process.Signal(sig); err != nil {
		c.logf("%s: %v to pid %d: %v", m.name, sig, m.proc.cmd.Process.Pid, err)
	}
}

func (c *chaosCluster) publish() {
	v := append([]*chaosMember(nil), c.members...)
	c.view.Store(&v)
	var eps []string
	for _, m := range v {
		eps = append(eps, m.endpoint())
	}
	c.admin.SetEndpoints(eps...)
	for _, w := range c.watchClients {
		w.SetEndpoints(eps...)
	}
}

func (c *chaosCluster) byID(id uint64) *chaosMember {
	for _, m := range c.members {
		if m.id == id {
			return m
		}
	}
	return nil
}

// status asks one member for its Status, briefly.
func (c *chaosCluster) status(m *chaosMember) (*clientv3.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.admin.Status(ctx, m.endpoint())
}

// leader is the member that the first member answering Status names as
// leader, or nil.
func (c *chaosCluster) leader() *chaosMember {
	for _, m := range c.members {
		if m.down || m.paused {
			continue
		}
		if st, err := c.status(m); err == nil && st.Leader != 0 {
			if l := c.byID(st.Leader); l != nil {
				return l
			}
		}
	}
	return nil
}

// pick resolves a target role to a member among those ok accepts, other
// than not.
func (c *chaosCluster) pick(role string, not *chaosMember, ok func(*chaosMember) bool) *chaosMember {
	var lead *chaosMember
	if role != "any" {
		lead = c.leader()
	}
	if role == "leader" && lead != nil && lead != not && ok(lead) {
		return lead
	}
	var cands []*chaosMember
	for _, m := range c.members {
		if m != not && ok(m) && (role != "follower" || m != lead) {
			cands = append(cands, m)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	return cands[c.rng.IntN(len(cands))]
}

func (c *chaosCluster) cutLink(from, to *chaosMember, mode cutMode) {
	k := [2]*chaosMember{from, to}
	c.cuts[k]++
	to.proxy.cut(from.ip, mode)
}

func (c *chaosCluster) healLink(from, to *chaosMember) {
	k := [2]*chaosMember{from, to}
	if c.cuts[k]--; c.cuts[k] <= 0 {
		delete(c.cuts, k)
		to.proxy.heal(from.ip)
	}
}

func anyUp(m *chaosMember) bool     { return !m.down }
func runningOK(m *chaosMember) bool { return !m.down && !m.paused }

// inject starts a fault; it sets f.undo if the fault has an end.
func (c *chaosCluster) inject(f *fault) {
	switch f.kind {
	case fKill:
		m := c.pick(f.target, nil, anyUp)
		if m == nil {
			c.skip(f, "no member is up")
			return
		}
		f.resolved = m.name
		c.kill(m)
		f.undo = func() {
			if m.down && !m.removed {
				c.start(m)
				c.logf("#%d end: %s restarted (pid %d)", f.n, m.name, m.proc.cmd.Process.Pid)
			}
		}
	case fPause:
		m := c.pick(f.target, nil, runningOK)
		if m == nil {
			c.skip(f, "no member is running")
			return
		}
		f.resolved = m.name
		c.signal(m, syscall.SIGSTOP)
		m.paused = true
		f.undo = func() {
			if m.paused && !m.down {
				c.signal(m, syscall.SIGCONT)
				m.paused = false
				c.logf("#%d end: %s continued", f.n, m.name)
			}
		}
	case fIsolate:
		m := c.pick(f.target, nil, func(*chaosMember) bool { return true })
		f.resolved = m.name
		var links [][2]*chaosMember
		for _, o := range c.members {
			if o != m {
				links = append(links, [2]*chaosMember{m, o}, [2]*chaosMember{o, m})
			}
		}
		c.cutLinks(f, links)
	case fBridge, fOneWay:
		a := c.pick(f.target, nil, func(*chaosMember) bool { return true })
		b := c.pick(f.target2, a, func(*chaosMember) bool { return true })
		if a == nil || b == nil {
			c.skip(f, "not two members")
			return
		}
		links := [][2]*chaosMember{{a, b}}
		f.resolved = a.name + "->" + b.name
		if f.kind == fBridge {
			links = append(links, [2]*chaosMember{b, a})
			f.resolved = a.name + "<->" + b.name
		}
		c.cutLinks(f, links)
	case fMoveLeader:
		lead := c.leader()
		if lead == nil {
			c.skip(f, "no leader")
			return
		}
		to := c.pick("follower", lead, runningOK)
		if to == nil {
			c.skip(f, "no running follower")
			return
		}
		f.resolved = lead.name + "->" + to.name
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := lead.cli.MoveLeader(ctx, to.id)
		cancel()
		c.logf("#%d %s %s: %v", f.n, f.kind, f.resolved, errString(err))
	case fReplace:
		c.replace(f)
		return
	}
	c.mu.Lock()
	c.injected[f.kind]++
	c.mu.Unlock()
	if f.resolved != "" && f.kind != fMoveLeader {
		c.logf("%s: %s", f, f.resolved)
	}
}

func (c *chaosCluster) cutLinks(f *fault, links [][2]*chaosMember) {
	for _, l := range links {
		c.cutLink(l[0], l[1], f.mode)
	}
	f.undo = func() {
		for _, l := range links {
			c.healLink(l[0], l[1])
		}
		c.logf("#%d end: %s healed", f.n, f.resolved)
	}
}

func (c *chaosCluster) skip(f *fault, why string) {
	c.mu.Lock()
	c.skipped++
	c.mu.Unlock()
	c.logf("%s: skipped, %s", f, why)
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// replace removes a member through the Cluster API and adds a fresh one
// as a learner, starts it (--initial-cluster-state existing), and
// promotes it once it has caught up.
func (c *chaosCluster) replace(f *fault) {
	start := time.Now()
	victim := c.pick(f.target, nil, func(*chaosMember) bool { return true })
	f.resolved = victim.name
	c.logf("%s: removing %s (%x)", f, victim.name, victim.id)
	var others []string
	for _, m := range c.members {
		if m != victim {
			others = append(others, m.endpoint())
		}
	}
	cli, err := newClientv3(others)
	if err != nil {
		c.fail("replace: client: %v", err)
		return
	}
	defer cli.Close()
	deadline := time.Now().Add(chaosReplaceMax)
	retry := func(what string, do func(ctx context.Context) (done bool, err error)) bool {
		var last error
		for tries := 1; ; tries++ {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			done, err := do(ctx)
			cancel()
			if done {
				c.logf("#%d %s: done after %d tries", f.n, what, tries)
				return true
			}
			if err != nil && (last == nil || err.Error() != last.Error()) {
				c.logf("#%d %s: %v (retrying)", f.n, what, err)
			}
			last = err
			if time.Now().After(deadline) {
				c.fail("replace (#%d, schedule %s): %s did not succeed within %v: %v", f.n, f, what, chaosReplaceMax, last)
				return false
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	// The victim stops by itself once it learns it was removed.
	victim.proc.expected.Store(true)
	ok := retry("MemberRemove "+victim.name, func(ctx context.Context) (bool, error) {
		_, err := cli.MemberRemove(ctx, victim.id)
		if err == nil || errors.Is(err, rpctypes.ErrMemberNotFound) {
			return true, nil // gone; an earlier try whose answer was lost removed it
		}
		return false, err
	})
	if !ok {
		victim.proc.expected.Store(false)
		return
	}
	c.kill(victim)
	victim.removed = true
	var slot int
	for i, m := range c.members {
		if m == victim {
			slot = i
		}
	}
	for _, o := range c.members {
		if o != victim {
			for _, l := range [][2]*chaosMember{{o, victim}, {victim, o}} {
				for c.cuts[l] > 0 {
					c.healLink(l[0], l[1])
				}
			}
		}
	}
	c.members = append(c.members[:slot:slot], c.members[slot+1:]...)
	c.publish()
	victim.proxy.close()

	nm := c.newMember()
	c.logf("#%d adding %s as a learner, peer URL %s", f.n, nm.name, nm.peerURL())
	ok = retry("MemberAddAsLearner "+nm.name, func(ctx context.Context) (bool, error) {
		resp, err := cli.MemberAddAsLearner(ctx, []string{nm.peerURL()})
		if err == nil {
			nm.id = resp.Member.ID
			return true, nil
		}
		// An earlier try whose answer was lost may have added it.
		if ml, lerr := cli.MemberList(ctx); lerr == nil {
			for _, mm := range ml.Members {
				if len(mm.PeerURLs) == 1 && mm.PeerURLs[0] == nm.peerURL() {
					nm.id = mm.ID
					return true, nil
				}
			}
		}
		return false, err
	})
	if !ok {
		return
	}
	var initial []string
	for _, m := range c.members {
		initial = append(initial, m.name+"="+m.peerURL())
	}
	initial = append(initial, nm.name+"="+nm.peerURL())
	c.setArgs(nm, strings.Join(initial, ","), "existing")
	c.start(nm)
	c.members = append(c.members[:slot:slot], append([]*chaosMember{nm}, c.members[slot:]...)...)
	c.publish()
	c.logf("#%d started %s (%x, pid %d), --initial-cluster %s", f.n, nm.name, nm.id, nm.proc.cmd.Process.Pid, strings.Join(initial, ","))
	ok = retry("MemberPromote "+nm.name, func(ctx context.Context) (bool, error) {
		_, err := cli.MemberPromote(ctx, nm.id)
		if err == nil {
			return true, nil
		}
		if errors.Is(err, rpctypes.ErrMemberNotLearner) {
			return true, nil // an earlier try whose answer was lost promoted it
		}
		return false, err
	})
	if !ok {
		return
	}
	c.mu.Lock()
	c.injected[fReplace]++
	c.mu.Unlock()
	c.logf("#%d end: %s replaced by %s in %.1fs", f.n, victim.name, nm.name, time.Since(start).Seconds())
}

// healAll ends every fault: links healed, paused members continued, down
// members restarted.
func (c *chaosCluster) healAll(schedule []*fault) {
	for _, f := range schedule {
		if f.undo != nil {
			f.undo()
			f.undo = nil
		}
	}
	for k := range c.cuts {
		k[1].proxy.heal(k[0].ip)
		delete(c.cuts, k)
	}
	for _, m := range c.members {
		switch {
		case m.down:
			c.start(m)
			c.logf("heal: %s restarted", m.name)
		case m.paused:
			c.signal(m, syscall.SIGCONT)
			m.paused = false
			c.logf("heal: %s continued", m.name)
		}
	}
}

// ---- the workload ----

type chaosWorkload struct {
	c        *chaosCluster
	keys     []string
	budget   atomic.Int64
	seed     uint64
	hist     [][]*chaosOp // by worker; the last is the test's own
	nextVal  atomic.Int64
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

func (w *chaosWorkload) now() int64 { return int64(time.Since(w.c.t0)) }

// classify says what an error means for an operation: reads that fail
// did nothing; a write did nothing only if it never left the client
// (grpc had no connection to send it on), else its outcome is unknown.
func classify(kind opKind, err error) outcome {
	if kind == opGet || kind == opGetSerial {
		return outFailed
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unavailable {
		msg := s.Message()
		if strings.Contains(msg, "connection refused") || strings.Contains(msg, "there is no address available") || strings.Contains(msg, "there is no connection available") {
			return outFailed
		}
	}
	return outUnknown
}

func seen(kvs []*mvccpb.KeyValue) []kvSeen {
	var out []kvSeen
	for _, kv := range kvs {
		out = append(out, kvSeen{Value: string(kv.Value), Mod: kv.ModRevision, Create: kv.CreateRevision, V: kv.Version})
	}
	return out
}

func (w *chaosWorkload) worker(stop <-chan struct{}, id int) {
	rng := rand.New(rand.NewPCG(w.seed, uint64(id)+1))
	lastMod := map[string]int64{}
	// Each worker paces itself to its share of chaosRate.
	every := time.Duration(float64(time.Second) * float64(*chaosWorkers) / chaosRate)
	next := time.Now()
	for {
		if d := time.Until(next); d > 0 {
			select {
			case <-stop:
				return
			case <-time.After(d):
			}
		}
		next = next.Add(every)
		if now := time.Now(); next.Before(now) {
			next = now // do not catch up in a burst after a slow stretch
		}
		select {
		case <-stop:
			return
		default:
		}
		if w.budget.Add(-1) < 0 {
			return
		}
		view := *w.c.view.Load()
		m := view[rng.IntN(len(view))]
		key := w.keys[rng.IntN(len(w.keys))]
		op := &chaosOp{Client: id, Key: key, Member: m.name}
		switch r := rng.IntN(100); {
		case r < 35:
			op.Kind = opPut
		case r < 55:
			op.Kind = opCAS
			op.Expect = lastMod[key]
			if rng.IntN(4) == 0 {
				op.Expect = 0
			}
		case r < 88:
			op.Kind = opGet
		default:
			op.Kind = opGetSerial
		}
		if op.Kind == opPut || op.Kind == opCAS {
			op.Value = fmt.Sprintf("v%d-c%d", w.nextVal.Add(1), id)
		}
		w.do(m.cli, op)
		w.hist[id] = append(w.hist[id], op)
		if op.Out == outOK {
			switch {
			case op.Kind == opPut || op.Kind == opCAS && op.Succeeded:
				lastMod[key] = op.Rev
			case len(op.KVs) == 1:
				lastMod[key] = op.KVs[0].Mod
			case op.Kind != opGetSerial:
				lastMod[key] = 0
			}
		}
	}
}

// do sends one operation and records what came back.
func (w *chaosWorkload) do(cli *clientv3.Client, op *chaosOp) {
	ctx, cancel := context.WithTimeout(context.Background(), chaosOpTimeout)
	defer cancel()
	op.Call = w.now()
	var err error
	switch op.Kind {
	case opPut:
		var r *clientv3.PutResponse
		if r, err = cli.Put(ctx, op.Key, op.Value); err == nil {
			op.Rev = r.Header.Revision
		}
	case opCAS:
		var r *clientv3.TxnResponse
		r, err = cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(op.Key), "=", op.Expect)).
			Then(clientv3.OpPut(op.Key, op.Value)).
			Else(clientv3.OpGet(op.Key)).Commit()
		if err == nil {
			op.Rev, op.Succeeded = r.Header.Revision, r.Succeeded
			if !r.Succeeded && len(r.Responses) == 1 {
				op.KVs = seen(r.Responses[0].GetResponseRange().Kvs)
			}
		}
	case opGet, opGetSerial:
		var opts []clientv3.OpOption
		if op.Kind == opGetSerial {
			opts = append(opts, clientv3.WithSerializable())
		}
		var r *clientv3.GetResponse
		if r, err = cli.Get(ctx, op.Key, opts...); err == nil {
			op.Rev, op.KVs = r.Header.Revision, seen(r.Kvs)
		}
	}
	op.Return = w.now()
	if err != nil {
		op.Out, op.Err = classify(op.Kind, err), shortErr(err)
	}
}

func shortErr(err error) string {
	if s, ok := status.FromError(err); ok {
		msg := s.Message()
		if len(msg) > 80 {
			msg = msg[:80] + "..."
		}
		return s.Code().String() + ": " + msg
	}
	return err.Error()
}

// chaosWatcher watches the workload's prefix from the start, resuming
// from the revision after the last event it saw whenever its watch ends.
type chaosWatcher struct {
	name    string
	cli     *clientv3.Client
	events  []watchEvent // every event received, in order
	next    atomic.Int64 // the revision it waits for
	resumes int
	errs    []string
}

func (w *chaosWatcher) run(ctx context.Context, rng *rand.Rand) {
	for ctx.Err() == nil {
		// Each watch lasts a few seconds, so that resuming from a
		// revision is exercised too.
		wctx, cancel := context.WithTimeout(ctx, time.Duration(2000+rng.IntN(4000))*time.Millisecond)
		ch := w.cli.Watch(wctx, chaosPrefix, clientv3.WithPrefix(), clientv3.WithRev(w.next.Load()))
		for resp := range ch {
			if resp.CompactRevision != 0 {
				w.errs = append(w.errs, fmt.Sprintf("compacted at %d while waiting for %d", resp.CompactRevision, w.next.Load()))
			}
			if err := resp.Err(); err != nil {
				if wctx.Err() == nil && len(w.errs) < 20 {
					w.errs = append(w.errs, "watch ended: "+err.Error())
				}
				break
			}
			for _, ev := range resp.Events {
				w.events = append(w.events, watchEvent{
					Key: string(ev.Kv.Key), Value: string(ev.Kv.Value), Mod: ev.Kv.ModRevision,
					Create: ev.Kv.CreateRevision, Ver: ev.Kv.Version, Delete: ev.Type == clientv3.EventTypeDelete,
				})
				if ev.Kv.ModRevision >= w.next.Load() {
					w.next.Store(ev.Kv.ModRevision + 1)
				}
			}
		}
		if ctx.Err() == nil {
			w.resumes++
			if wctx.Err() == nil {
				time.Sleep(100 * time.Millisecond) // it ended by itself
			}
		}
		cancel()
	}
}

// ---- the test ----

// chaosRun is one run's settings, from the flags and the seed.
type chaosRun struct {
	seed         uint64
	dur          time.Duration
	keys         int
	checkTimeout time.Duration
	snapCount    int
	schedule     []*fault
	rerun        string // the command that reruns it
}

func chaosSettings(t *testing.T) *chaosRun {
	r := &chaosRun{seed: *chaosSeed, dur: *chaosDuration, keys: *chaosKeys, checkTimeout: *chaosCheck}
	if r.seed == 0 {
		r.seed = rand.Uint64()%1_000_000 + 1
	}
	r.rerun = fmt.Sprintf("cd tests && go test -count=1 -run 'TestChaos$' -v -chaos.seed=%d -chaos.duration=%v", r.seed, r.dur)
	if *chaosWorkers != 24 {
		r.rerun += fmt.Sprintf(" -chaos.workers=%d", *chaosWorkers)
	}
	if r.keys != 0 {
		r.rerun += fmt.Sprintf(" -chaos.keys=%d", r.keys)
	} else {
		r.keys = max(64, int(r.dur.Seconds()/2))
	}
	if *chaosFaults != "all" {
		r.rerun += " -chaos.faults=" + *chaosFaults
	}
	if *chaosBin != "" {
		r.rerun += " -chaos.bin=" + *chaosBin
	}
	if r.checkTimeout == 0 {
		r.checkTimeout = max(time.Minute, 2*time.Duration(r.dur.Seconds())*time.Second)
	}
	allowed, err := parseFaults(*chaosFaults)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(r.seed, 0))
	r.snapCount = []int{100, 1000, 10000}[rng.IntN(3)]
	r.schedule = genSchedule(rng, r.dur, allowed)
	return r
}

func (r *chaosRun) scheduleText() string {
	var b strings.Builder
	for _, f := range r.schedule {
		b.WriteString("  " + f.String() + "\n")
	}
	return b.String()
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos suite takes a minute; make chaos runs a long one")
	}
	for _, ip := range []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"} {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Skipf("needs the loopback addresses 127.0.0.11-13 (Linux routes 127/8 to lo): %v", err)
		}
		ln.Close()
	}
	run := chaosSettings(t)
	t.Logf("chaos seed %d, %v of faults, %d workers, %d keys, --snapshot-count=%d; rerun with:\n  %s",
		run.seed, run.dur, *chaosWorkers, run.keys, run.snapCount, run.rerun)
	t.Logf("schedule (%d faults, nominal times from the workload's start):\n%s", len(run.schedule), run.scheduleText())

	c := startChaosCluster(t, run)
	ws := c.startWatchers()
	wl := c.startWorkload(run)
	c.runSchedule(run)
	wl.stopAndWait()
	c.logf("faults over; healing")
	c.healAll(run.schedule)
	c.liveness(wl)
	res := &chaosResult{}
	res.finalRev, res.hash, res.converged = c.converge()
	c.readFinal(wl, res)
	ws.catchUpAndStop(res.finalRev)
	history := wl.history()
	checks := c.check(run, history, ws, res)
	t.Log(c.summary(run, history, checks))

	c.mu.Lock()
	failures := append([]string(nil), c.failures...)
	c.mu.Unlock()
	if len(failures) > 0 {
		dir, _ := os.MkdirTemp("", fmt.Sprintf("detcd-chaos-%d-", run.seed))
		if len(checks.visualizations) > 0 {
			t.Logf("porcupine's visualizations of the keys that do not linearize: %s", strings.Join(checks.visualizations, " "))
		}
		hp := filepath.Join(dir, "history.txt")
		if err := writeHistory(hp, history); err == nil {
			t.Logf("the history, one operation a line: %s", hp)
		}
		t.Errorf("chaos seed %d: %d failures:\n- %s\nschedule:\n%sfault log:\n  %s\nrerun with (the same faults at the same nominal times; the timing of the rest differs):\n  %s",
			run.seed, len(failures), strings.Join(failures, "\n- "), run.scheduleText(), strings.Join(c.faultLog, "\n  "), run.rerun)
	}
}

// startChaosCluster starts three members on 127.0.0.11-13, each behind
// its peer proxy, and waits until they have a leader.
func startChaosCluster(t *testing.T, run *chaosRun) *chaosCluster {
	bin := *chaosBin
	if bin == "" {
		bin, _ = binaries(t)
	}
	c := &chaosCluster{
		t: t, bin: bin, token: fmt.Sprintf("chaos-%d", run.seed), rng: rand.New(rand.NewPCG(run.seed, 1)),
		dir: t.TempDir(), cuts: map[[2]*chaosMember]int{}, nextIP: 11, injected: map[faultKind]int{},
		extra: []string{fmt.Sprintf("--snapshot-count=%d", run.snapCount)},
	}
	c.t0 = time.Now()
	var initial []string
	for range 3 {
		m := c.newMember()
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peerURL())
	}
	var err error
	if c.admin, err = newClientv3([]string{c.members[0].endpoint()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.admin.Close() })
	for _, m := range c.members {
		c.setArgs(m, strings.Join(initial, ","), "new")
		c.start(m)
	}
	for _, m := range c.members {
		waitHealthy(t, m.proc.proc, m.endpoint())
		st, err := c.status(m)
		if err != nil {
			t.Fatalf("status of %s: %v", m.name, err)
		}
		m.id = st.Header.MemberId
	}
	for _, m := range c.members {
		t.Logf("%s: id %x, client %s, peer %s (proxy) -> %s:%d, pid %d", m.name, m.id, m.endpoint(), m.peerURL(), m.ip, m.peerPort, m.proc.cmd.Process.Pid)
	}
	for range chaosWatchers {
		cli, err := newClientv3([]string{c.members[0].endpoint()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		c.watchClients = append(c.watchClients, cli)
	}
	c.publish()
	return c
}

// chaosWatcherSet is the run's watchers and the revision they start after.
type chaosWatcherSet struct {
	c        *chaosCluster
	list     []*chaosWatcher
	startRev int64
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

// startWatchers starts the watchers from the revision before the workload.
func (c *chaosCluster) startWatchers() *chaosWatcherSet {
	ctx := ctxT(c.t, 10*time.Second)
	r0, err := c.members[0].cli.Get(ctx, "nothing")
	if err != nil {
		c.t.Fatal(err)
	}
	ws := &chaosWatcherSet{c: c, startRev: r0.Header.Revision}
	var wctx context.Context
	wctx, ws.stop = context.WithCancel(context.Background())
	c.t.Cleanup(func() { ws.stop(); ws.wg.Wait() })
	for i, cli := range c.watchClients {
		w := &chaosWatcher{name: fmt.Sprintf("watcher %d", i), cli: cli}
		w.next.Store(ws.startRev + 1)
		ws.list = append(ws.list, w)
		rng := rand.New(rand.NewPCG(c.rng.Uint64(), uint64(i)))
		ws.wg.Go(func() { w.run(wctx, rng) })
	}
	return ws
}

// catchUpAndStop waits (bounded) for every watcher to reach rev, then
// stops them.
func (ws *chaosWatcherSet) catchUpAndStop(rev int64) {
	deadline := time.Now().Add(30 * time.Second)
	for _, w := range ws.list {
		for w.next.Load() <= rev && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	ws.stop()
	ws.wg.Wait()
}

// startWorkload starts the workers.
func (c *chaosCluster) startWorkload(run *chaosRun) *chaosWorkload {
	wl := &chaosWorkload{c: c, seed: run.seed, hist: make([][]*chaosOp, *chaosWorkers+1), stop: make(chan struct{})}
	for i := range run.keys {
		wl.keys = append(wl.keys, fmt.Sprintf("%sk%03d", chaosPrefix, i))
	}
	// The workload keeps to chaosRate operations a second, so the
	// history stays small enough to check quickly; the budget bounds it
	// whatever happens.
	wl.budget.Store(int64(2 * chaosRate * (run.dur + chaosWarmup).Seconds()))
	// If the test stops early, the workers stop before the processes die.
	c.t.Cleanup(wl.stopAndWait)
	c.t0 = time.Now()
	for i := range *chaosWorkers {
		wl.wg.Go(func() { wl.worker(wl.stop, i) })
	}
	return wl
}

func (wl *chaosWorkload) stopAndWait() {
	wl.stopOnce.Do(func() { close(wl.stop) })
	wl.wg.Wait()
}

func (wl *chaosWorkload) history() []*chaosOp {
	var h []*chaosOp
	for _, ops := range wl.hist {
		h = append(h, ops...)
	}
	return h
}

// runSchedule injects the faults at their nominal times and ends them; a
// replacement that takes longer than chaosReplaceNominal pushes the rest
// back. It returns at the end of the fault phase.
func (c *chaosCluster) runSchedule(run *chaosRun) {
	type action struct {
		at    time.Duration
		f     *fault
		start bool
	}
	var actions []action
	for _, f := range run.schedule {
		actions = append(actions, action{f.at, f, true})
		if f.dur > 0 && f.kind != fReplace {
			actions = append(actions, action{f.at + f.dur, f, false})
		}
	}
	sort.SliceStable(actions, func(i, j int) bool {
		if actions[i].at != actions[j].at {
			return actions[i].at < actions[j].at
		}
		return !actions[i].start && actions[j].start
	})
	var shift time.Duration
	for _, a := range actions {
		if d := time.Until(c.t0.Add(a.at + shift)); d > 0 {
			time.Sleep(d)
		}
		if !a.start {
			if a.f.undo != nil {
				a.f.undo()
				a.f.undo = nil
			}
			continue
		}
		began := time.Now()
		c.inject(a.f)
		if a.f.kind == fReplace {
			if over := time.Since(began) - chaosReplaceNominal; over > 0 {
				shift += over
			}
		}
	}
	if d := time.Until(c.t0.Add(run.dur + shift)); d > 0 {
		time.Sleep(d)
	}
}

// liveness requires, once healed, a write through every member within
// chaosLiveness.
func (c *chaosCluster) liveness(wl *chaosWorkload) {
	live := &chaosOp{}
	id := *chaosWorkers
	for _, m := range c.members {
		deadline := time.Now().Add(chaosLiveness)
		for {
			op := &chaosOp{Client: id, Kind: opPut, Key: chaosPrefix + "live", Value: fmt.Sprintf("v%d-live-%s", wl.nextVal.Add(1), m.name), Member: m.name}
			wl.do(m.cli, op)
			wl.hist[id] = append(wl.hist[id], op)
			if op.Out == outOK {
				live = op
				break
			}
			if time.Now().After(deadline) {
				c.fail("liveness: no write through %s succeeded within %v of healing: %s", m.name, chaosLiveness, op.Err)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	c.logf("liveness: a write went through every member (the last at revision %d)", live.Rev)
}

// chaosResult is what the run ended with.
type chaosResult struct {
	converged bool
	finalRev  int64
	hash      uint32
	final     map[string]kvSeen // every key at the end
	finalOK   bool
}

// readFinal reads every key from the leader, and adds the read to the
// history as one linearizable get per key.
func (c *chaosCluster) readFinal(wl *chaosWorkload, res *chaosResult) {
	res.final = map[string]kvSeen{}
	m := c.leader()
	if m == nil {
		c.fail("no leader to read the final state from")
		return
	}
	call := wl.now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	r, err := m.cli.Get(ctx, chaosPrefix, clientv3.WithPrefix())
	cancel()
	ret := wl.now()
	if err != nil {
		c.fail("reading the final state from %s: %v", m.name, err)
		return
	}
	res.finalOK = true
	for _, kv := range r.Kvs {
		res.final[string(kv.Key)] = kvSeen{Value: string(kv.Value), Mod: kv.ModRevision, Create: kv.CreateRevision, V: kv.Version}
	}
	if !res.converged {
		res.finalRev = r.Header.Revision
	}
	id := *chaosWorkers
	for _, k := range append(wl.keys, chaosPrefix+"live") {
		op := &chaosOp{Client: id, Kind: opGet, Key: k, Member: m.name, Call: call, Return: ret, Rev: r.Header.Revision}
		if kv, ok := res.final[k]; ok {
			op.KVs = []kvSeen{kv}
		}
		wl.hist[id] = append(wl.hist[id], op)
	}
}

type chaosChecks struct {
	verdicts       map[string]string
	visualizations []string
}

// check runs the end-of-run checks; their failures go to c.fail.
func (c *chaosCluster) check(run *chaosRun, history []*chaosOp, ws *chaosWatcherSet, res *chaosResult) chaosChecks {
	out := chaosChecks{verdicts: map[string]string{}}
	v := out.verdicts
	if res.converged {
		v["convergence"] = fmt.Sprintf("ok (revision %d, hash %d on %d members)", res.finalRev, res.hash, len(c.members))
	} else {
		v["convergence"] = "FAILED"
	}
	if !res.finalOK {
		v["durability"] = "NOT CHECKED: no final state"
	} else if fails := checkDurability(history, res.final); len(fails) > 0 {
		v["durability"] = "FAILED"
		for _, f := range fails[:min(20, len(fails))] {
			c.fail("durability: %s", f)
		}
	} else {
		v["durability"] = fmt.Sprintf("ok (%d keys)", len(res.final))
	}
	if fails := checkSerializable(history); len(fails) > 0 {
		v["serializable reads"] = "FAILED"
		for _, f := range fails {
			c.fail("%s", f)
		}
	} else {
		v["serializable reads"] = "ok"
	}
	watchFailed := false
	nev, resumes := 0, 0
	for _, w := range ws.list {
		nev += len(w.events)
		resumes += w.resumes
		for _, e := range w.errs {
			c.t.Logf("%s: %s", w.name, e)
		}
		if res.finalOK {
			for _, f := range checkWatch(w.name, w.events, ws.startRev, res.finalRev, history, res.final) {
				watchFailed = true
				c.fail("watch: %s", f)
			}
		}
	}
	switch {
	case watchFailed:
		v["watches"] = "FAILED"
	case !res.finalOK:
		v["watches"] = "NOT CHECKED: no final state"
	default:
		v["watches"] = fmt.Sprintf("ok (%d watchers, %d events, %d resumed watches)", len(ws.list), nev, resumes)
	}
	dir, _ := os.MkdirTemp("", fmt.Sprintf("detcd-chaos-%d-porcupine-", run.seed))
	lin := checkLinearizable(history, run.checkTimeout, dir)
	switch lin.result {
	case porcupine.Ok:
		v["linearizability"] = fmt.Sprintf("ok (%d operations on %d keys, checked in %.1fs)", lin.ops, lin.keys, lin.duration.Seconds())
	case porcupine.Unknown:
		v["linearizability"] = fmt.Sprintf("UNKNOWN: the check timed out after %v (%d operations on %d keys)", run.checkTimeout, lin.ops, lin.keys)
	case porcupine.Illegal:
		v["linearizability"] = fmt.Sprintf("FAILED on %d keys", len(lin.illegal))
		for _, s := range lin.illegal[:min(3, len(lin.illegal))] {
			c.fail("not linearizable: %s", s)
		}
		out.visualizations = lin.files
	}
	if len(out.visualizations) == 0 {
		os.RemoveAll(dir)
	}
	return out
}

// summary is the run's summary: operations, faults, checks.
func (c *chaosCluster) summary(run *chaosRun, history []*chaosOp, checks chaosChecks) string {
	type tally struct{ ok, failed, unknown int }
	byKind := map[opKind]*tally{}
	var all tally
	var lat []time.Duration
	for _, op := range history {
		tl := byKind[op.Kind]
		if tl == nil {
			tl = &tally{}
			byKind[op.Kind] = tl
		}
		switch op.Out {
		case outOK:
			tl.ok++
			all.ok++
			if op.Client < *chaosWorkers {
				lat = append(lat, time.Duration(op.Return-op.Call))
			}
		case outFailed:
			tl.failed++
			all.failed++
		case outUnknown:
			tl.unknown++
			all.unknown++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "chaos seed %d summary:\n", run.seed)
	fmt.Fprintf(&b, "  operations: %d (ok %d, failed %d, unknown %d); ok/failed/unknown by kind:", len(history), all.ok, all.failed, all.unknown)
	for _, k := range []opKind{opPut, opCAS, opGet, opGetSerial} {
		if tl := byKind[k]; tl != nil {
			fmt.Fprintf(&b, " %s %d/%d/%d", k, tl.ok, tl.failed, tl.unknown)
		}
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		pct := func(p float64) time.Duration {
			return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(time.Millisecond)
		}
		fmt.Fprintf(&b, "\n  latency of the operations that succeeded: p50 %v, p90 %v, p99 %v, max %v", pct(0.5), pct(0.9), pct(0.99), lat[len(lat)-1].Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "\n  faults injected:")
	for _, k := range []faultKind{fKill, fPause, fIsolate, fBridge, fOneWay, fMoveLeader, fReplace} {
		fmt.Fprintf(&b, " %s %d,", k, c.injected[k])
	}
	fmt.Fprintf(&b, " skipped %d\n", c.skipped)
	var acc, ref, drop int64
	for _, m := range c.all {
		acc += m.proxy.accepted.Load()
		ref += m.proxy.refused.Load()
		drop += m.proxy.dropped.Load()
	}
	fmt.Fprintf(&b, "  proxies: %d peer connections, %d refused, %d dropped from the start\n", acc, ref, drop)
	fmt.Fprintf(&b, "  members at the end:")
	for _, m := range c.members {
		fmt.Fprintf(&b, " %s (%d starts)", m.name, m.starts)
	}
	b.WriteString("\n  checks:\n")
	for _, k := range []string{"convergence", "durability", "linearizability", "serializable reads", "watches"} {
		fmt.Fprintf(&b, "    %s: %s\n", k, checks.verdicts[k])
	}
	fmt.Fprintf(&b, "  wall time %.1fs", time.Since(c.t0).Seconds())
	return b.String()
}

// converge waits until every member reports the same revision, the same
// HashKV at it and the same members, and returns the revision and hash
// (false if they never do, which is a failure).
func (c *chaosCluster) converge() (int64, uint32, bool) {
	deadline := time.Now().Add(chaosConverge)
	var last string
	for time.Now().Before(deadline) {
		revs := map[string]int64{}
		var rev int64
		same := true
		for _, m := range c.members {
			st, err := c.status(m)
			if err != nil {
				last = fmt.Sprintf("%s: status: %v", m.name, err)
				same = false
				break
			}
			if st.IsLearner {
				last = fmt.Sprintf("%s is still a learner", m.name)
			}
			revs[m.name] = st.Header.Revision
			if rev == 0 {
				rev = st.Header.Revision
			}
			same = same && st.Header.Revision == rev
		}
		if !same {
			if len(revs) == len(c.members) {
				last = fmt.Sprintf("revisions differ: %v", revs)
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		hashes := map[string]uint32{}
		var h uint32
		agree := true
		for _, m := range c.members {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r, err := c.admin.HashKV(ctx, m.endpoint(), rev)
			cancel()
			if err != nil {
				last = fmt.Sprintf("%s: HashKV at %d: %v", m.name, rev, err)
				agree = false
				break
			}
			hashes[m.name] = r.Hash
			if h == 0 {
				h = r.Hash
			}
			agree = agree && r.Hash == h
		}
		if !agree {
			if len(hashes) == len(c.members) {
				last = fmt.Sprintf("at revision %d the hashes differ: %v", rev, hashes)
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		var lists []string
		for _, m := range c.members {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r, err := m.cli.MemberList(ctx)
			cancel()
			if err != nil {
				last = fmt.Sprintf("%s: MemberList: %v", m.name, err)
				break
			}
			var ms []string
			for _, mm := range r.Members {
				ms = append(ms, fmt.Sprintf("%x:%s:%v:learner=%v", mm.ID, mm.Name, mm.PeerURLs, mm.IsLearner))
			}
			sort.Strings(ms)
			lists = append(lists, strings.Join(ms, " "))
		}
		if len(lists) != len(c.members) {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		var want []string
		for _, m := range c.members {
			want = append(want, fmt.Sprintf("%x:%s:%v:learner=false", m.id, m.name, []string{m.peerURL()}))
		}
		sort.Strings(want)
		differ := false
		var views []string
		for i, l := range lists {
			views = append(views, fmt.Sprintf("%s lists %s", c.members[i].name, l))
			differ = differ || l != strings.Join(want, " ")
		}
		if differ {
			last = fmt.Sprintf("the member lists are not the expected %s: %s", strings.Join(want, " "), strings.Join(views, "; "))
		}
		if differ {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		c.logf("converged: revision %d, hash %d, members %s", rev, h, strings.Join(want, " "))
		return rev, h, true
	}
	c.fail("the members did not converge within %v of healing: %s", chaosConverge, last)
	return 0, 0, false
}
