package sim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"

	"github.com/detcd/detcd/etcddb"
)

// Peer probes: with every health probe, the monitor also asks the
// member's peer URL, through the server's peer handler (the one the peer
// streams reach, peerstream.go), in turn GET /version, as an operator's
// tool does; GET /members, a joining member's question, whose answer
// must be the membership the member applied, in its cluster
// (checkPeerMembers); and etcd's prober's /raft/probing. None waits on
// the member, so they move no trace.

// peerProbeURLs are the peer probes' requests, in turn.
var peerProbeURLs = []*url.URL{{Path: "/version"}, {Path: "/members"}, {Path: "/raft/probing"}}

// probePeer sends the member the nth peer probe.
func (m *member) probePeer(n int) {
	w, inc, h := m.w, m.inc, m.peerIn.Handler()
	u := peerProbeURLs[n%len(peerProbeURLs)]
	req := &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	w.spawn(func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if m.inc != inc || !m.up {
			return
		}
		switch u.Path {
		case "/version":
			w.checks.checkVersion(m, rec.Body.Bytes())
		case "/members":
			w.checks.checkPeerMembers(m, rec)
		default:
			var p struct{ OK bool }
			if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &p) != nil || !p.OK {
				w.checks.fail("peer: %s answered %s %d: %q", m.name, u.Path, rec.Code, rec.Body.Bytes())
			}
		}
	})
}

// checkPeerMembers: a member's GET /members names its cluster and lists
// the membership it applied (before it applied any, the one it started
// with), by id, as a joining member reads it.
func (c *checkers) checkPeerMembers(m *member, rec *httptest.ResponseRecorder) {
	want := m.node.Members()
	if len(want) == 0 {
		want = m.node.InitialMembers()
	}
	wantIDs := make([]uint64, 0, len(want))
	for _, mm := range want {
		wantIDs = append(wantIDs, mm.ID)
	}
	slices.Sort(wantIDs)
	var got []etcddb.Member
	err := json.Unmarshal(rec.Body.Bytes(), &got)
	gotIDs := make([]uint64, 0, len(got))
	for _, mm := range got {
		gotIDs = append(gotIDs, mm.ID)
	}
	cluster := rec.Header().Get("X-Etcd-Cluster-ID")
	if rec.Code != http.StatusOK || err != nil || !slices.Equal(gotIDs, wantIDs) || cluster != strconv.FormatUint(m.cfg.ClusterID, 16) {
		c.fail("peer: %s answered /members %d in cluster %q with %q, want members %v of cluster %x", m.name, rec.Code, cluster, rec.Body.Bytes(), wantIDs, m.cfg.ClusterID)
	}
}
