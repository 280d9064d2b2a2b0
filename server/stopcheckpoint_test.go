package server

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/detcd/detcd/core"
)

// TestStopCheckpointRestart: a member stopped cleanly with more than
// core.DefaultStopCheckpointMinBytes of log since its last checkpoint
// writes one as it stops, so that its restart applies no log tail, and
// serves every key.
func TestStopCheckpointRestart(t *testing.T) {
	const valueBytes = 64 << 10
	puts := int(core.DefaultStopCheckpointMinBytes/valueBytes) + 8
	dir := t.TempDir()
	s, cli := testServer(t, dir, nil)
	c := ctx(t)
	value := strings.Repeat("v", valueBytes)
	for i := range puts {
		if _, err := cli.Put(c, fmt.Sprintf("k%04d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	cli.Close()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	_, cli = testServer(t, dir, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	g, err := cli.Get(c, "k", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || g.Count != int64(puts) || g.Header.Revision != int64(puts)+1 {
		t.Fatalf("after restart: %v %v", g, err)
	}
	if !strings.Contains(logs.String(), "msg=\"restarted member\"") || !strings.Contains(logs.String(), "log-entries=0") {
		t.Fatalf("the restart replayed a log tail:\n%s", logs.String())
	}
}
