package tests

import (
	"regexp"
	"strings"
	"testing"
)

// TestEtcdctlLockElect: etcdctl's lock and elect (clientv3's concurrency
// package on KV, Lease and Watch) against detcd and etcd. Their keys hold
// the session's lease ID, the servers' own: it is captured and masked.
func TestEtcdctlLockElect(t *testing.T) {
	_, ctl := binaries(t)
	d := startDetcd(t, t.TempDir(), 0, 0)
	eaddr, _ := startEmbeddedEtcd(t, false)
	targets := []*ctlTarget{
		newCtlTarget(t, "etcd", eaddr),
		newCtlTarget(t, "detcd", strings.TrimPrefix(d.endpoint(), "http://")),
	}
	steps := []ctlStep{
		// With a command: it runs holding the lock, which is then released.
		{args: []string{"lock", "lk", "--", "sh", "-c", "echo $ETCD_LOCK_REV"}, want: want("2\n")},
		// The command's exit status is etcdctl's.
		{args: []string{"lock", "lk", "--", "sh", "-c", "exit 3"}},
		// Without: the key is printed and the lock held until etcdctl is
		// stopped (its lease then lives out its TTL).
		{args: []string{"lock", "held"}, untilLines: 1, capture: regexp.MustCompile(`held/(?P<lockLease>[0-9a-f]+)`), want: want("held/<lockLease>\n\n")},
		{args: []string{"get", "--prefix", "held"}, want: want("held/<lockLease>\n\n")},
		{args: []string{"elect", "el", "p1"}, untilLines: 2, capture: regexp.MustCompile(`el/(?P<electLease>[0-9a-f]+)`), want: want("el/<electLease>\np1\n")},
		{args: []string{"elect", "-l", "el"}, untilLines: 2, want: want("el/<electLease>\np1\n")},
		{args: []string{"get", "--prefix", "-w", "fields", "el"}},
		{args: []string{"elect"}},
	}
	runCtlSteps(t, ctl, targets[0], targets[1], steps)
}
