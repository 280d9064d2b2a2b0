package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// healthGet is one request to a health endpoint and what it must answer.
type healthGet struct {
	method, path string
	code         int
	body         []string // substrings
	notBody      []string
}

func checkHealthGets(t *testing.T, addr string, gets []healthGet) {
	t.Helper()
	for _, g := range gets {
		req, _ := http.NewRequest(g.method, "http://"+addr+g.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", g.method, g.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != g.code {
			t.Errorf("%s %s: code %d, want %d (%s)", g.method, g.path, resp.StatusCode, g.code, b)
		}
		for _, want := range g.body {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s %s: body %q lacks %q", g.method, g.path, b, want)
			}
		}
		for _, not := range g.notBody {
			if strings.Contains(string(b), not) {
				t.Errorf("%s %s: body %q has %q", g.method, g.path, b, not)
			}
		}
	}
}

func waitLeader(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.status.leader.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHealthEndpoints: etcd's /health parameters, /livez and /readyz with
// their named checks, ?verbose and ?exclude, and the NOSPACE alarm.
func TestHealthEndpoints(t *testing.T) {
	s, cli := testServer(t, t.TempDir(), nil)
	waitLeader(t, s)
	addr := s.Addrs()[0]
	checkHealthGets(t, addr, []healthGet{
		{"GET", "/health", 200, []string{`{"health":"true","reason":""}`}, nil},
		{"GET", "/health?serializable=true", 200, []string{`"health":"true"`}, nil},
		{"POST", "/health", 405, []string{"Method Not Allowed"}, nil},
		{"GET", "/livez", 200, []string{"ok\n"}, []string{"[+]"}},
		{"GET", "/livez?verbose", 200, []string{"[+]serializable_read ok\nok\n"}, nil},
		{"GET", "/readyz?verbose=true", 200, []string{"[+]data_corruption ok", "[+]serializable_read ok", "[+]linearizable_read ok", "[+]non_learner ok", "ok\n"}, nil},
		{"GET", "/readyz?verbose&exclude=linearizable_read", 200, []string{"[+]serializable_read ok"}, []string{"linearizable_read"}},
		{"GET", "/readyz/linearizable_read?verbose", 200, []string{"[+]linearizable_read ok\nok\n"}, []string{"serializable"}},
		{"GET", "/livez/serializable_read", 200, []string{"ok\n"}, nil},
		{"GET", "/readyz/data_corruption", 200, []string{"ok\n"}, nil},
		{"POST", "/readyz", 405, nil, nil},
	})
	c := ctx(t)
	if _, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Alarm(c, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: uint64(s.node.ID()), Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatalf("activate NOSPACE: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !s.status.noSpace.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if v := testutil.ToFloat64(s.metrics.alarms); v != 1 {
		t.Errorf("etcd_debugging_server_alarms under NOSPACE = %v, want 1", v)
	}
	checkHealthGets(t, addr, []healthGet{
		{"GET", "/health", 503, []string{`{"health":"false","reason":"ALARM NOSPACE"}`}, nil},
		{"GET", "/health?exclude=NOSPACE", 200, []string{`{"health":"true","reason":""}`}, nil},
		{"GET", "/health?exclude=CORRUPT", 503, []string{"ALARM NOSPACE"}, nil},
		{"GET", "/readyz", 200, []string{"ok\n"}, nil},
	})
}

// TestHealthCutOff: a member cut off from its peers loses its leader:
// /health and /readyz say so, the serializable checks still pass.
func TestHealthCutOff(t *testing.T) {
	tc := newTestClusterWith(t, 3, "http", func(c *Config) {
		c.HeartbeatInterval, c.ElectionTimeout = 20*time.Millisecond, 200*time.Millisecond
	})
	keep := (tc.leader() + 1) % 3
	// Serving clients: the member is ready before it is cut off.
	if _, err := tc.client(keep).Put(ctx(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if i != keep {
			tc.stop(i)
		}
	}
	s := tc.servers[keep]
	for deadline := time.Now().Add(20 * time.Second); s.status.leader.Load() != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	checkHealthGets(t, s.Addrs()[0], []healthGet{
		{"GET", "/health", 503, []string{`{"health":"false","reason":"RAFT NO LEADER"}`}, nil},
		{"GET", "/health?serializable=true", 200, []string{`"health":"true"`}, nil},
		{"GET", "/livez?verbose", 200, []string{"[+]serializable_read ok"}, nil},
		{"GET", "/readyz", 503, []string{"[-]linearizable_read failed: ", "[+]serializable_read ok"}, nil},
	})
}
