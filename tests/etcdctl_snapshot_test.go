package tests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/detcd/detcd/etcddb"
)

// TestEtcdctlSnapshot: etcdctl snapshot save against a detcd binary gives
// etcd's database file, which detcd snapshot status describes; detcd
// snapshot restore makes a new data directory of it, whose member serves
// the same keys at the same revision.
func TestEtcdctlSnapshot(t *testing.T) {
	bin, ctl := binaries(t)
	src := startDetcd(t, t.TempDir(), 0, 0)
	c := &ctlCluster{t: t, ctlBin: ctl, bin: bin}
	for _, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"c", "3"}} {
		c.ctl([]string{src.endpoint()}, "put", kv[0], kv[1])
	}
	c.ctl([]string{src.endpoint()}, "del", "b")
	want := c.ctl([]string{src.endpoint()}, "get", "", "--prefix", "-w", "json")
	file := filepath.Join(t.TempDir(), "backup.db")
	if out := c.ctl([]string{src.endpoint()}, "snapshot", "save", file); !strings.Contains(out, "Snapshot saved at "+file) {
		t.Fatalf("snapshot save: %q", out)
	}

	saved, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !etcddb.IsBolt(saved) {
		t.Fatalf("etcdctl saved no bolt file: %x", saved[:min(len(saved), 64)])
	}
	status, err := exec.Command(bin, "snapshot", "status", file, "--write-out", "json").CombinedOutput()
	if err != nil || !strings.Contains(string(status), `"revision":5,`) || !strings.Contains(string(status), `"totalKey":2,`) {
		t.Fatalf("detcd snapshot status: %v\n%s", err, status)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	peer := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "snapshot", "restore", file, "--name", "default", "--data-dir", dir,
		"--initial-cluster", "default="+loopbackURL(peer), "--initial-advertise-peer-urls", loopbackURL(peer)).CombinedOutput()
	if err != nil {
		t.Fatalf("detcd snapshot restore: %v\n%s", err, out)
	}
	restored := startDetcd(t, dir, 0, peer)
	got := c.ctl([]string{restored.endpoint()}, "get", "", "--prefix", "-w", "json")
	if maskIDs(got) != maskIDs(want) {
		t.Fatalf("restored member answers\n%s\nwant\n%s", got, want)
	}
}

// headerIDs are the fields of etcdctl's JSON header that a restore
// changes.
var headerIDs = regexp.MustCompile(`"(cluster_id|member_id|raft_term)":\d+`)

func maskIDs(s string) string { return headerIDs.ReplaceAllString(s, `"$1":0`) }
