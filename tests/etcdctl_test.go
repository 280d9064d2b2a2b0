package tests

// etcdctl end to end: the same etcdctl commands go to the detcd binary and
// to an embedded etcd 3.7.3, both fresh, in the same order, so revisions
// line up. Their outputs (stdout, stderr, exit code) must be the same once
// what has to differ is masked: member and cluster ids, URLs, raft terms,
// durations, and the database sizes (detcd has no bolt file; its sizes are
// its own).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// ctlTarget is a server etcdctl talks to, with what masking needs.
type ctlTarget struct {
	name      string
	endpoint  string // http://127.0.0.1:port
	peerURL   string
	memberID  uint64
	clusterID uint64
	vars      []ctlVar
}

func newCtlTarget(t *testing.T, name, addr string) *ctlTarget {
	t.Helper()
	s := dial(t, name, addr, func() {})
	defer s.conn.Close()
	resp, err := pb.NewClusterClient(s.conn).MemberList(ctxT(t, 10*time.Second), &pb.MemberListRequest{})
	if err != nil {
		t.Fatalf("%s member list: %v", name, err)
	}
	if len(resp.Members) != 1 || len(resp.Members[0].PeerURLs) != 1 {
		t.Fatalf("%s member list: %v", name, resp)
	}
	return &ctlTarget{name: name, endpoint: "http://" + addr, peerURL: resp.Members[0].PeerURLs[0],
		memberID: resp.Header.MemberId, clusterID: resp.Header.ClusterId}
}

// run runs etcdctl against the target and returns its output, masked.
func (c *ctlTarget) run(t *testing.T, ctl string, st ctlStep) ctlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := make([]string, len(st.args))
	for i, a := range st.args {
		args[i] = c.expand(a)
	}
	cmd := exec.CommandContext(ctx, ctl, append([]string{"--endpoints=" + c.endpoint, "--dial-timeout=5s", "--command-timeout=10s"}, args...)...)
	cmd.Stdin = strings.NewReader(st.stdin)
	var o, e syncBuffer
	cmd.Stdout, cmd.Stderr = &o, &e
	code := 0
	if err := runCtl(cmd, &o, st.untilLines); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("etcdctl %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	if st.capture != nil {
		m := st.capture.FindStringSubmatch(o.String())
		if m == nil {
			t.Fatalf("%s: etcdctl %v: no %s in %q", c.name, args, st.capture, o.String())
		}
		c.vars = append(c.vars, ctlVar{name: st.capture.SubexpNames()[1], value: m[1]})
	}
	out := c.mask(o.String())
	if st.statusLine {
		out = maskFields(out, 4, 5, 6, 10) // db size, in use, % not in use, raft term
	}
	return ctlResult{stdout: out, stderr: c.mask(dropLogLines(e.String())), code: code}
}

// runCtl runs an etcdctl command to its end or, for one that never ends
// (watch), until it has printed untilLines lines, then stops it: the exit
// status is then 0. Either way it gives up after the caller's timeout.
func runCtl(cmd *exec.Cmd, out *syncBuffer, untilLines int) error {
	if untilLines == 0 {
		return cmd.Run()
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			if strings.Count(out.String(), "\n") >= untilLines {
				cmd.Process.Kill()
				<-done
				return nil
			}
		}
	}
}

// syncBuffer is a bytes.Buffer the test may read while etcdctl writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ctlVar is a value an earlier step printed (a lease ID), which later
// steps use as {name} and which masking shows as <name>.
type ctlVar struct{ name, value string }

func (c *ctlTarget) expand(arg string) string {
	for _, v := range c.vars {
		arg = strings.ReplaceAll(arg, "{"+v.name+"}", v.value)
	}
	return arg
}

type ctlResult struct {
	stdout, stderr string
	code           int
}

var (
	durationRE = regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|us|ms|s|m)\b`)
	jsonMasks  = []*regexp.Regexp{
		regexp.MustCompile(`"(raft_term|raftTerm)":\d+`),
		// detcd has no bolt database file: its sizes are its own.
		regexp.MustCompile(`"(dbSize|dbSizeInUse)":\d+`),
	}
	// maskedColumns are the table columns masked, by header.
	maskedColumns = map[string]bool{"RAFT TERM": true, "DB SIZE": true, "IN USE": true, "PERCENTAGE NOT IN USE": true, "TOOK": true}
)

// mask replaces what differs between any two servers by placeholders.
func (c *ctlTarget) mask(s string) string {
	for _, v := range c.vars {
		// Lease IDs are printed in hex, and in decimal in JSON.
		s = strings.ReplaceAll(s, v.value, "<"+v.name+">")
		if n, err := strconv.ParseUint(v.value, 16, 64); err == nil {
			s = strings.ReplaceAll(s, strconv.FormatUint(n, 10), "<"+v.name+">")
		}
	}
	s = strings.NewReplacer(
		c.endpoint, "<client-url>",
		c.peerURL, "<peer-url>",
		strconv.FormatUint(c.memberID, 10), "<member-id>",
		strconv.FormatUint(c.memberID, 16), "<member-id>",
		strconv.FormatUint(c.clusterID, 10), "<cluster-id>",
		strconv.FormatUint(c.clusterID, 16), "<cluster-id>",
	).Replace(s)
	for _, re := range jsonMasks {
		s = re.ReplaceAllString(s, `"$1":<masked>`)
	}
	s = durationRE.ReplaceAllString(s, "<duration>")
	return maskTables(s)
}

// maskTables rewrites etcdctl's box-drawn tables as "a | b | c" rows
// (column widths follow the contents, which differ) and masks the cells of
// maskedColumns.
func maskTables(s string) string {
	var out []string
	var header []string
	for _, line := range strings.Split(s, "\n") {
		switch {
		case strings.HasPrefix(line, "┌"), strings.HasPrefix(line, "├"), strings.HasPrefix(line, "└"):
			continue
		case strings.HasPrefix(line, "│"):
			cells := strings.Split(strings.Trim(line, "│"), "│")
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			if header == nil {
				header = cells
			} else {
				for i := range cells {
					if i < len(header) && maskedColumns[header[i]] {
						cells[i] = "<masked>"
					}
				}
			}
			line = strings.Join(cells, " | ")
		default:
			header = nil
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// maskFields masks the given fields of each ", "-separated line.
func maskFields(s string, fields ...int) string {
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		f := strings.Split(line, ", ")
		for _, n := range fields {
			if n < len(f) {
				f[n] = "<masked>"
			}
		}
		lines[i] = strings.Join(f, ", ")
	}
	return strings.Join(lines, "\n")
}

// dropLogLines removes the client library's JSON log lines (a warning for
// every failed call, with a timestamp), keeping etcdctl's own messages.
func dropLogLines(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(line, `{"level":`) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

type ctlStep struct {
	args       []string
	stdin      string
	statusLine bool    // endpoint status's simple output: mask fields
	want       *string // the masked stdout etcd must give, where it is short
	untilLines int     // a command that never ends: stop it after this many lines
	// capture: the first group of this expression in the output becomes a
	// variable named after the group.
	capture *regexp.Regexp
}

func want(s string) *string { return &s }

// txnOK and txnNotOK are `etcdctl txn` scripts: compares, a blank line,
// the success ops, a blank line, the failure ops, a blank line.
const (
	txnOK    = "value(\"foo\") = \"bar1\"\nmod(\"foo\") > \"1\"\n\nput foo ok\nget foo\n\nput foo notok\n\n"
	txnNotOK = "value(\"foo\") = \"nope\"\n\nput foo yes\n\nput foo2 no\nget foo2\ndel foo3\n\n"
	txnJSON  = "version(\"foo\") = \"2\"\ncreate(\"foo\") < \"3\"\n\nget foo\n\n\n"
)

func TestEtcdctl(t *testing.T) {
	_, ctl := binaries(t)
	d := startDetcd(t, t.TempDir(), 0, 0)
	eaddr, _ := startEmbeddedEtcd(t, false)
	targets := []*ctlTarget{
		newCtlTarget(t, "etcd", eaddr),
		newCtlTarget(t, "detcd", strings.TrimPrefix(d.endpoint(), "http://")),
	}
	steps := []ctlStep{
		{args: []string{"put", "foo", "bar"}, want: want("OK\n")},                                // rev 2
		{args: []string{"put", "foo2", "baz"}, want: want("OK\n")},                               // rev 3
		{args: []string{"put", "--prev-kv", "foo", "bar1"}, want: want("OK\nfoo\nbar\n")},        // rev 4
		{args: []string{"get", "foo"}, want: want("foo\nbar1\n")},                                //
		{args: []string{"get", "--prefix", "foo"}, want: want("foo\nbar1\nfoo2\nbaz\n")},         //
		{args: []string{"get", "--prefix", "--keys-only", "foo"}, want: want("foo\n\nfoo2\n\n")}, //
		{args: []string{"get", "--prefix", "--print-value-only", "foo"}, want: want("bar1\nbaz\n")},
		{args: []string{"get", "--prefix", "--limit=1", "--sort-by=MODIFY", "--order=DESCEND", "foo"}, want: want("foo\nbar1\n")},
		{args: []string{"get", "-w", "json", "foo"}, want: want(`{"header":{"cluster_id":<cluster-id>,"member_id":<member-id>,"revision":4,"raft_term":<masked>},"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":4,"version":2,"value":"YmFyMQ=="}],"count":1}` + "\n")},
		{args: []string{"get", "--prefix", "--count-only", "-w", "json", "foo"}},
		{args: []string{"get", "--from-key", "foo2"}, want: want("foo2\nbaz\n")},
		{args: []string{"get", "--rev=2", "foo"}, want: want("foo\nbar\n")},
		{args: []string{"txn"}, stdin: txnOK, want: want("SUCCESS\n\nOK\n\nfoo\nok\n")}, // rev 5
		{args: []string{"txn"}, stdin: txnNotOK, want: want("FAILURE\n\nOK\n\nfoo2\nno\n\n0\n")},
		{args: []string{"txn", "-w", "json"}, stdin: txnJSON},
		{args: []string{"del", "foo2"}, want: want("1\n")},
		{args: []string{"put", "a1", "x"}, want: want("OK\n")},
		{args: []string{"put", "a2", "y"}, want: want("OK\n")},
		{args: []string{"del", "--prefix", "a"}, want: want("2\n")},
		{args: []string{"del", "--prev-kv", "foo"}, want: want("1\nfoo\nok\n")},
		{args: []string{"del", "nothing"}, want: want("0\n")},
		// Watches from the past: every event since --rev, then live.
		{args: []string{"watch", "--rev=2", "foo"}, untilLines: 12, want: want("PUT\nfoo\nbar\nPUT\nfoo\nbar1\nPUT\nfoo\nok\nDELETE\nfoo\n\n")},
		{args: []string{"watch", "--rev=2", "--prefix", "--prev-kv", "a"}, untilLines: 16},
		{args: []string{"watch", "--rev=2", "--prefix", "-w", "json", "foo"}, untilLines: 1},
		{args: []string{"compaction", "5"}, want: want("compacted revision 5\n")},
		{args: []string{"get", "--rev=2", "foo"}, want: want("")}, // compacted: an error
		{args: []string{"compaction", "--physical", "6"}, want: want("compacted revision 6\n")},
		{args: []string{"compaction", "3"}, want: want("")}, // compacted already
		{args: []string{"get", "--rev=999", "foo"}, want: want("")},
		{args: []string{"put", "", "x"}, want: want("")},
		{args: []string{"get", "-w", "json", "--rev=0", "--prefix", ""}},
		{args: []string{"endpoint", "status"}, statusLine: true},
		{args: []string{"endpoint", "status", "-w", "table"}},
		{args: []string{"endpoint", "status", "-w", "json"}},
		{args: []string{"endpoint", "health"}, want: want("<client-url> is healthy: successfully committed proposal: took = <duration>\n")},
		{args: []string{"endpoint", "health", "-w", "json"}},
		{args: []string{"endpoint", "health", "-w", "table"}},
		{args: []string{"endpoint", "hashkv", "-w", "json"}},
		{args: []string{"member", "list"}, want: want("<member-id>, started, default, <peer-url>, <client-url>, false\n")},
		{args: []string{"member", "list", "-w", "table"}},
		{args: []string{"member", "list", "-w", "json"}},
		{args: []string{"alarm", "list"}, want: want("")},
		{args: []string{"defrag"}, want: want("Finished defragmenting etcd member[<client-url>]. took <duration>\n")},
		// Leases (after hashkv: their IDs are the servers' own, and a key's
		// lease ID is part of the hash).
		{args: []string{"lease", "grant", "300"}, capture: regexp.MustCompile(`lease (?P<lease>[0-9a-f]+) granted`), want: want("lease <lease> granted with TTL(<duration>)\n")},
		{args: []string{"put", "--lease={lease}", "lk", "lv"}, want: want("OK\n")},
		{args: []string{"lease", "timetolive", "--keys", "{lease}"}},
		{args: []string{"lease", "list"}, want: want("found 1 leases\n<lease>\n")},
		{args: []string{"lease", "keep-alive", "--once", "{lease}"}, want: want("lease <lease> keepalived with TTL(300)\n")},
		{args: []string{"lease", "revoke", "{lease}"}, want: want("lease <lease> revoked\n")},
		{args: []string{"get", "lk"}, want: want("")},
		{args: []string{"lease", "revoke", "{lease}"}},
		{args: []string{"lease", "grant", "0"}, capture: regexp.MustCompile(`lease (?P<lease2>[0-9a-f]+) granted`)},
		{args: []string{"lease", "timetolive", "1234"}, want: want("lease 0000000000001234 already expired\n")},
	}
	runCtlSteps(t, ctl, targets[0], targets[1], steps)
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

// runCtlSteps runs each step against etcd
// and detcd and reports every difference, and any etcd output the step
// does not expect: etcd is the ground truth, so that guards the test.
func runCtlSteps(t *testing.T, ctl string, etcd, detcd *ctlTarget, steps []ctlStep) {
	t.Helper()
	for i, st := range steps {
		name := fmt.Sprintf("%02d %s", i, strings.Join(st.args, " "))
		e := etcd.run(t, ctl, st)
		dd := detcd.run(t, ctl, st)
		if st.want != nil && e.stdout != *st.want {
			t.Errorf("%s: etcd's output is not what the test expects:\n%q\nwant\n%q", name, e.stdout, *st.want)
		}
		if e != dd {
			t.Errorf("DIFF etcdctl %s:\n  etcd  (exit %d):\n%s%s\n  detcd (exit %d):\n%s%s", name,
				e.code, indent(e.stdout), indent(e.stderr), dd.code, indent(dd.stdout), indent(dd.stderr))
		}
	}
}
