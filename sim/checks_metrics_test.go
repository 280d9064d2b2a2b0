package sim

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/detcd/detcd/server"
)

// TestInstrumentsChecked: every member runs the server's instruments,
// the metrics check reads them, and members answer health probes
// healthy; a put the metrics count that no client was served, a
// /version that names another cluster version, a /metrics scrape that
// shows other values than the collectors hold, and an answer without the
// CORS header fail the checks.
func TestInstrumentsChecked(t *testing.T) {
	o := short(3)
	o.Duration = 5 * time.Second
	w, err := New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res := w.Run(); !res.OK() {
		t.Fatalf("failures %v\n  replay: detcd-sim run %s", res.Failures, res.Options)
	}
	healthy := 0
	var up *member
	for _, m := range w.members {
		healthy += m.healthyProbes
		if m.up && m.inst != nil && m.inst.checked {
			up = m
		}
	}
	if healthy == 0 || up == nil {
		t.Fatalf("%d probes answered healthy, a member with checked metrics: %v", healthy, up != nil)
	}
	put := func(ctx context.Context, req any) (any, error) { return &pb.PutResponse{}, nil }
	up.inst.Unary(context.Background(), &pb.PutRequest{Key: []byte("k")}, &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Put"}, put)
	up.inst.nextCheckUs = 0
	w.checks.checkMetrics(up)
	if !slices.ContainsFunc(w.checks.failures, func(f string) bool { return strings.Contains(f, "etcd_mvcc_put_total") }) {
		t.Errorf("a put counted but not served: failures %v, want the metrics check's", w.checks.failures)
	}
	w.checks.checkVersion(up, []byte(`{"etcdserver":"3.7.3","etcdcluster":"3.6.0","storage":"3.6.0"}`))
	if !slices.ContainsFunc(w.checks.failures, func(f string) bool { return strings.HasPrefix(f, "version: ") }) {
		t.Errorf("/version naming a cluster version the member did not apply: failures %v, want the version check's", w.checks.failures)
	}
	checkScrapeBites(t, w, up)
}

// checkScrapeBites: the member's own scrape passes the scrape and CORS
// checks; one with a value changed, and an answer without the CORS
// header, fail them.
func checkScrapeBites(t *testing.T, w *World, up *member) {
	t.Helper()
	had := len(w.checks.failures)
	var rec *httptest.ResponseRecorder
	var body string // the text exposition, scraped last
	for _, format := range scrapeFormats {
		rec = httptest.NewRecorder()
		req := probeRequest(metricsURL)
		req.Header.Set("Accept", string(format))
		up.inst.ClientHandler(&up.flags, up.front).ServeHTTP(rec, req)
		body = rec.Body.String()
		w.checks.checkCORS(up, "/metrics", rec.Header())
		w.checks.checkScrape(up, rec)
		if len(w.checks.failures) != had {
			t.Fatalf("the member's own scrape in %s: failures %v", format, w.checks.failures[had:])
		}
	}
	const rev = "\netcd_debugging_mvcc_current_revision "
	if !strings.Contains(body, rev) {
		t.Fatalf("the scrape lacks %q:\n%s", rev, body)
	}
	bad := httptest.NewRecorder()
	bad.Header().Set("Content-Type", rec.Header().Get("Content-Type"))
	bad.WriteString(strings.Replace(body, rev, rev+"1", 1))
	w.checks.checkScrape(up, bad)
	w.checks.checkCORS(up, "/metrics", http.Header{})
	if got := w.checks.failures[had:]; len(got) != 2 || !strings.HasPrefix(got[0], "metrics: ") || !strings.HasPrefix(got[1], "http: ") {
		t.Errorf("a scrape showing another revision and an answer without CORS: failures %v, want the scrape and CORS checks'", got)
	}
}

func TestMetricsShrank(t *testing.T) {
	was := server.Readings{ProposalsCommitted: 10, ProposalsApplied: 9, CurrentRevision: 5, LeaderChanges: 2}
	if got := metricsShrank(was, was); len(got) != 0 {
		t.Errorf("unchanged readings: %v", got)
	}
	now := was
	now.ProposalsApplied, now.LeaderChanges = 8, 1
	got := metricsShrank(was, now)
	if len(got) != 2 || !strings.Contains(got[0], "applied") || !strings.Contains(got[1], "leader_changes") {
		t.Errorf("applied and leader changes went down: %v", got)
	}
}
