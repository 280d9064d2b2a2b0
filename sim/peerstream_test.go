package sim

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/detcd/detcd/server"
)

// TestPeerHandlerRefusals: a member's peer handler, as the simulator runs
// it, refuses what the server's refuses (a member of another cluster, a
// stream meant for another member, a sender without its id, a method
// other than POST) and a snapshot stream that does not start with its
// MsgSnap, while the members' own streams carry the run.
func TestPeerHandlerRefusals(t *testing.T) {
	o := DefaultOptions()
	o.Seed, o.Members, o.Duration, o.Faults = 1, 3, 5*time.Second, 0
	type answer struct {
		code int
		body string
	}
	got := map[string]answer{}
	res, trace := runTraced(t, o, func(w *World) {
		w.schedule(2_000_000, func() {
			m := w.members[0]
			cluster := m.cfg.ClusterID
			ask := func(name string, req *http.Request, err error) {
				if err != nil {
					t.Fatal(err)
				}
				resp := newPeerResponse()
				h := m.peerIn.Handler()
				w.spawn(func() {
					h.ServeHTTP(resp, req)
					got[name] = answer{resp.code, resp.body.String()}
				})
			}
			url := peerURL(m.name)
			req, err := server.NewPeerStreamRequest(context.Background(), url, server.PeerStreamPath, cluster+1, 2, 1, strings.NewReader(""))
			ask("other cluster", req, err)
			req, err = server.NewPeerStreamRequest(context.Background(), url, server.PeerStreamPath, cluster, 2, 3, strings.NewReader(""))
			ask("other target", req, err)
			req, err = server.NewPeerStreamRequest(context.Background(), url, server.PeerStreamPath, cluster, 2, 1, strings.NewReader(""))
			if err == nil {
				req.Header.Set("X-Server-From", "not-an-id")
			}
			ask("bad sender", req, err)
			req, err = http.NewRequest(http.MethodGet, url+server.PeerStreamPath, nil)
			ask("GET", req, err)
			// A snapshot stream whose first frame is a chunk.
			req, err = server.NewPeerStreamRequest(context.Background(), url, server.PeerSnapshotPath, cluster, 2, 1,
				bytes.NewReader(server.AppendPeerFrame(nil, []byte{2, 'x'})))
			ask("snapshot without MsgSnap", req, err)
		})
	})
	if !res.OK() {
		t.Fatalf("run failed: %v", res.Failures)
	}
	if !regexp.MustCompile(`m\d>m\d MsgHeartbeat `).MatchString(trace) {
		t.Fatal("no heartbeat went over the members' streams")
	}
	want := map[string]answer{
		"other cluster": {http.StatusPreconditionFailed, "cluster ID mismatch\n"},
		"other target":  {http.StatusPreconditionFailed, "to field mismatch\n"},
		"bad sender":    {http.StatusBadRequest, ""},
		"GET":           {http.StatusMethodNotAllowed, "Method Not Allowed\n"},
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok || g.code != w.code || (w.body != "" && g.body != w.body) {
			t.Errorf("%s: answered %d %q, want %d %q", name, g.code, g.body, w.code, w.body)
		}
	}
	// The stream is taken (200), then refused in its verdict frame.
	if g := got["snapshot without MsgSnap"]; g.code != http.StatusOK || !strings.Contains(g.body, "snapshot stream without its MsgSnap") {
		t.Errorf("a snapshot stream without its MsgSnap: answered %d %q", g.code, g.body)
	}
}
