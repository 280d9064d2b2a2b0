package server

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer collects a member's JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestStartUpLines: a member logs the start-up lines etcd's tooling waits
// for (etcd's e2e framework waits for "ready to serve client requests"),
// as JSON records whose msg is etcd's message.
func TestStartUpLines(t *testing.T) {
	logs := map[string]*logBuffer{}
	tc := newTestClusterWith(t, 2, "http", func(c *Config) {
		logs[c.Name] = &logBuffer{}
		c.Logger = slog.New(slog.NewJSONHandler(logs[c.Name], nil))
	})
	tc.leader()
	want := []string{
		`"msg":"started HTTP pipelining with remote peer"`,
		`"msg":"published local member to cluster through raft"`,
		`"msg":"set the initial cluster version"`,
		`"msg":"enabled capabilities for version","cluster-version":"3.7"`,
		`"msg":"ready to serve client requests"`,
		`"msg":"serving client traffic insecurely; this is strongly discouraged!","traffic":"grpc+http","address":"127.0.0.1:`,
	}
	for name, l := range logs { //detcd:maporder-ok: each member checked on its own
		// The cluster version is set a moment after the leader is known:
		// wait for it, a bounded number of times.
		var missing []string
		for range 500 {
			missing = missing[:0]
			for _, w := range want {
				if !strings.Contains(l.String(), w) {
					missing = append(missing, w)
				}
			}
			if len(missing) == 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if len(missing) > 0 {
			t.Errorf("%s: no %q in its log:\n%s", name, missing, l.String())
		}
	}
}
