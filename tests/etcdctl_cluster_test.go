package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ctlCluster is a cluster of detcd binaries on loopback that the test
// drives with etcdctl only, as an operator would.
type ctlCluster struct {
	t       *testing.T
	ctlBin  string
	bin     string
	members map[string]*detcdProc
}

// startCtlCluster starts members m1..mN as one new cluster and waits until
// each is healthy (has a leader).
func startCtlCluster(t *testing.T, n int) *ctlCluster {
	bin, ctl := binaries(t)
	c := &ctlCluster{t: t, ctlBin: ctl, bin: bin, members: map[string]*detcdProc{}}
	var initial []string
	ports := map[string][2]int{}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("m%d", i)
		ports[name] = [2]int{freePort(t), freePort(t)}
		initial = append(initial, name+"="+loopbackURL(ports[name][1]))
	}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("m%d", i)
		c.start(name, ports[name][0], ports[name][1], strings.Join(initial, ","), "new")
	}
	for _, d := range c.members {
		waitHealthy(t, d.proc, d.endpoint())
	}
	return c
}

func (c *ctlCluster) start(name string, clientPort, peerPort int, initial, state string) *detcdProc {
	return c.startIn(c.t.TempDir(), name, clientPort, peerPort, initial, state)
}

// startIn starts member name on dataDir: a restart passes the directory
// it had.
func (c *ctlCluster) startIn(dataDir, name string, clientPort, peerPort int, initial, state string) *detcdProc {
	client, peer := loopbackURL(clientPort), loopbackURL(peerPort)
	p := startProc(c.t, name, c.bin,
		"--name", name, "--data-dir", dataDir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", initial, "--initial-cluster-state", state,
		"--initial-cluster-token", "ctl-cluster", "--log-level", "warn")
	d := &detcdProc{proc: p, dataDir: dataDir, clientPort: clientPort, peerPort: peerPort}
	c.members[name] = d
	return d
}

// run runs etcdctl against the given endpoints and returns its stdout; a
// non-zero exit fails the test unless mayFail.
func (c *ctlCluster) run(endpoints []string, mayFail bool, args ...string) (string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.ctlBin, append([]string{"--endpoints=" + strings.Join(endpoints, ","),
		"--dial-timeout=5s", "--command-timeout=10s"}, args...)...)
	var o, e syncBuffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil && !mayFail {
		c.t.Fatalf("etcdctl %v: %v\nstdout: %s\nstderr: %s", args, err, o.String(), e.String())
	}
	if err != nil {
		err = fmt.Errorf("%w: %s", err, e.String())
	}
	return o.String(), err
}

// ctl runs etcdctl, which must succeed, and returns its stdout.
func (c *ctlCluster) ctl(endpoints []string, args ...string) string {
	c.t.Helper()
	out, _ := c.run(endpoints, false, args...)
	return out
}

func (c *ctlCluster) endpoints(names ...string) []string {
	var eps []string
	for _, n := range names {
		eps = append(eps, c.members[n].endpoint())
	}
	return eps
}

type ctlStatus struct {
	Endpoint string `json:"Endpoint"`
	Status   struct {
		Header struct {
			MemberID uint64 `json:"member_id"`
		} `json:"header"`
		Leader uint64 `json:"leader"`
	} `json:"Status"`
}

// leader asks every endpoint for its status and requires that they all
// name the same leader, one of them; it returns the leader's id and name.
func (c *ctlCluster) leader(names ...string) (uint64, string) {
	c.t.Helper()
	var sts []ctlStatus
	if err := json.Unmarshal([]byte(c.ctl(c.endpoints(names...), "endpoint", "status", "-w", "json")), &sts); err != nil {
		c.t.Fatalf("endpoint status: %v", err)
	}
	if len(sts) != len(names) {
		c.t.Fatalf("endpoint status: %d answers for %d members", len(sts), len(names))
	}
	lead, leaders := sts[0].Status.Leader, 0
	name := ""
	for i, st := range sts {
		if st.Status.Leader != lead {
			c.t.Fatalf("endpoint status: members disagree on the leader: %+v", sts)
		}
		if st.Status.Header.MemberID == lead {
			leaders++
			name = names[i]
		}
	}
	if leaders != 1 {
		c.t.Fatalf("endpoint status: %d members are the leader %x: %+v", leaders, lead, sts)
	}
	return lead, name
}

// addMember adds member name (a learner if learner) through endpoints
// with etcdctl, on fresh ports, and returns its id (hex), its ports and
// the ETCD_INITIAL_CLUSTER etcdctl printed for it. As etcd's strict
// reconfiguration check does, the leader refuses additions ("unhealthy
// cluster") until it has been in touch with a quorum for 5 s: it retries
// for 30 s.
func (c *ctlCluster) addMember(endpoints []string, name string, learner bool) (id string, clientPort, peerPort int, initial string) {
	c.t.Helper()
	clientPort, peerPort = freePort(c.t), freePort(c.t)
	args := []string{"member", "add", name, "--peer-urls=" + loopbackURL(peerPort)}
	if learner {
		args = append(args, "--learner")
	}
	var out string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var err error
		out, err = c.run(endpoints, true, args...)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("member add: %v %s", err, out)
		}
	}
	ids := regexp.MustCompile(`Member +([0-9a-f]+) added`).FindStringSubmatch(out)
	initials := regexp.MustCompile(`ETCD_INITIAL_CLUSTER="([^"]+)"`).FindStringSubmatch(out)
	if ids == nil || initials == nil {
		c.t.Fatalf("member add printed:\n%s", out)
	}
	return ids[1], clientPort, peerPort, initials[1]
}

// promote promotes the learner id (hex), retrying for up to within while
// the leader says it is not in sync yet.
func (c *ctlCluster) promote(endpoints []string, id string, within time.Duration) {
	c.t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(200 * time.Millisecond) {
		out, err := c.run(endpoints, true, "member", "promote", id)
		if err == nil && strings.Contains(out, "promoted") {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("member promote: %v %s", err, out)
		}
	}
}

// TestEtcdctlCluster drives a 3-member cluster of detcd binaries with
// etcdctl as issue 6 asks: endpoint status shows one leader, a put on one
// member is read (linearizable) on another, member list, add (a learner),
// promote and remove, and move-leader.
func TestEtcdctlCluster(t *testing.T) {
	c := startCtlCluster(t, 3)
	all := []string{"m1", "m2", "m3"}
	_, leadName := c.leader(all...)

	c.ctl(c.endpoints("m1"), "put", "greeting", "hello")
	if got := c.ctl(c.endpoints("m3"), "get", "greeting", "--print-value-only"); got != "hello\n" {
		t.Fatalf("linearizable get on m3: %q", got)
	}

	list := c.ctl(c.endpoints("m2"), "member", "list")
	for _, n := range all {
		if !strings.Contains(list, ", started, "+n+", ") {
			t.Fatalf("member list lacks %s:\n%s", n, list)
		}
	}

	// Add m4 as a learner, start it as etcdctl says, promote it once it
	// has caught up, then remove it.
	id, clientPort, peerPort, initial := c.addMember(c.endpoints(all...), "m4", true)
	m4 := c.start("m4", clientPort, peerPort, initial, "existing")
	waitHealthy(t, m4.proc, m4.endpoint())
	c.promote(c.endpoints(all...), id, 30*time.Second)
	if list := c.ctl(c.endpoints("m4"), "member", "list"); !strings.Contains(list, ", started, m4, ") || strings.Contains(list, "true\n") {
		t.Fatalf("member list after the promotion:\n%s", list)
	}
	// Likewise the removal of a member that is up.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err := c.run(c.endpoints(all...), true, "member", "remove", id)
		if err == nil && strings.Contains(out, "removed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("member remove: %v %s", err, out)
		}
	}
	if list := c.ctl(c.endpoints("m1"), "member", "list"); strings.Contains(list, "m4") {
		t.Fatalf("member list after the removal:\n%s", list)
	}

	// Move the leadership to a follower, asking the leader.
	var target string
	for _, n := range all {
		if n != leadName {
			target = n
			break
		}
	}
	targetID := memberIDOf(t, c.ctl(c.endpoints(target), "endpoint", "status", "-w", "json"))
	out := c.ctl(c.endpoints(leadName), "move-leader", strconv.FormatUint(targetID, 16))
	if !strings.Contains(out, "Leadership transferred") {
		t.Fatalf("move-leader printed %q", out)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, name := c.leader(all...); name == target {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never became the leader", target)
		}
	}
}

func memberIDOf(t *testing.T, statusJSON string) uint64 {
	t.Helper()
	var sts []ctlStatus
	if err := json.Unmarshal([]byte(statusJSON), &sts); err != nil || len(sts) != 1 {
		t.Fatalf("endpoint status %q: %v", statusJSON, err)
	}
	return sts[0].Status.Header.MemberID
}
