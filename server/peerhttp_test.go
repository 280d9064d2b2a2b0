package server

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/detcd/detcd/internal/testpki"
)

// http2Head is how an HTTP/2 (and so a gRPC) connection starts.
const http2Head = "PRI * HTTP/2.0"

// http1Request is how a peer connection starts: an HTTP/1.1 request.
var http1Request = regexp.MustCompile(`^(GET|POST) /\S* HTTP/1\.1\r\n`)

// TestPeerConnectionsAreHTTP1: members talk HTTP/1.1 to each other, as
// etcd's do: every connection towards a member's peer port (through a
// proxy that keeps their first bytes) opens with an HTTP/1.1 request,
// none with HTTP/2's preface.
func TestPeerConnectionsAreHTTP1(t *testing.T) {
	var proxy *cuttingProxy
	var listened, proxied string
	tc := newTestClusterWith(t, 3, "http", func(c *Config) {
		if c.Name == "m0" {
			listened = c.ListenPeerURLs[0]
			proxy = newCuttingProxy(t, strings.TrimPrefix(listened, "http://"), math.MaxInt64)
			proxied = "http://" + proxy.ln.Addr().String()
			c.InitialAdvertisePeerURLs = []string{proxied}
		}
		c.InitialCluster = strings.Replace(c.InitialCluster, "m0="+listened, "m0="+proxied, 1)
	})
	tc.leader()
	if _, err := tc.client(1).Put(ctx(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	if r, err := tc.client(0).Get(ctx(t), "k"); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("linearizable get on the proxied member: %v %v", r, err)
	}
	heads := proxy.connHeads()
	if len(heads) < 2 {
		t.Fatalf("%d connections towards the proxied member, want one from each peer at least", len(heads))
	}
	for _, h := range heads {
		if strings.HasPrefix(h, http2Head) || !http1Request.MatchString(h) {
			t.Errorf("a peer connection opens with %q, want an HTTP/1.1 request", h)
		}
	}
}

// TestPeerTLSIsHTTP1: a TLS peer port offers HTTP/1.1 alone, even to a
// client that would take HTTP/2.
func TestPeerTLSIsHTTP1(t *testing.T) {
	p := testpki.New(t)
	tc := newTestClusterWith(t, 1, "https", func(c *Config) {
		c.PeerTLS = TLSInfo{CertFile: p.Cert, KeyFile: p.Key, TrustedCAFile: p.CA, ClientCertAuth: true}
	})
	tc.leader()
	cfg := p.ClientTLS(t, p.Cert, p.Key)
	cfg.NextProtos = []string{"h2", "http/1.1"}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(tc.cfgs[0].InitialAdvertisePeerURLs[0], "https://"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.ConnectionState().NegotiatedProtocol; got != "http/1.1" {
		t.Fatalf("the peer port negotiated %q, want http/1.1", got)
	}
}

// TestPeerEndpoints: what etcd's peer port answers operators and tools,
// the peer port answers as etcd's does.
func TestPeerEndpoints(t *testing.T) {
	tc := newTestCluster(t, 1)
	tc.leader()
	s := tc.servers[0]
	if _, err := tc.client(0).Put(ctx(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	base := tc.cfgs[0].InitialAdvertisePeerURLs[0]
	cid := hexID(s.peers.clusterID)
	for _, c := range []struct {
		name, method, path, body string
		header                   http.Header
		wantCode                 int
		wantBody                 *regexp.Regexp
		wantHeader               http.Header
	}{
		{name: "version", method: "GET", path: "/version", wantCode: 200,
			wantBody: regexp.MustCompile(`^\{"etcdserver":"` + regexp.QuoteMeta(Version) + `","etcdcluster":"3\.7\.0","storage":"3\.7\.0"\}$`)},
		{name: "version by POST", method: "POST", path: "/version", wantCode: 405,
			wantBody: regexp.MustCompile(`^Method Not Allowed`), wantHeader: http.Header{"Allow": {"GET"}}},
		{name: "members", method: "GET", path: "/members", wantCode: 200,
			wantBody: regexp.MustCompile(`^\[\{"id":` + regexp.QuoteMeta(jsonNumber(s.node.ID())) +
				`,"peerURLs":\["` + regexp.QuoteMeta(base) + `"\],"name":"m0","clientURLs":\["` +
				regexp.QuoteMeta(tc.cfgs[0].AdvertiseClientURLs[0]) + `"\]\}\]\n$`),
			wantHeader: http.Header{"X-Etcd-Cluster-Id": {cid}, "Content-Type": {"application/json"}}},
		{name: "members by POST", method: "POST", path: "/members", wantCode: 405},
		{name: "probing", method: "GET", path: "/raft/probing", wantCode: 200,
			wantBody: regexp.MustCompile(`^\{"OK":true,"Now":"[^"]+"\}\n$`)},
		{name: "hash", method: "GET", path: "/members/hashkv", body: `{"revision":0}`, header: http.Header{"X-Etcd-Cluster-Id": {cid}},
			wantCode: 200, wantBody: regexp.MustCompile(`^\{"header":\{"revision":2\},"hash":\d+,"compact_revision":-1,"hash_revision":2\}$`)},
		{name: "hash of a future revision", method: "GET", path: "/members/hashkv", body: `{"revision":99}`, wantCode: 400,
			wantBody: regexp.MustCompile(`^mvcc: required revision is a future revision\n$`)},
		{name: "hash for another cluster", method: "GET", path: "/members/hashkv", body: `{}`, header: http.Header{"X-Etcd-Cluster-Id": {"1"}},
			wantCode: 412, wantBody: regexp.MustCompile(`^cluster ID mismatch\n$`)},
		{name: "hash of a bad request", method: "GET", path: "/members/hashkv", body: `{`, wantCode: 400,
			wantBody: regexp.MustCompile(`^error unmarshalling request\n$`)},
		{name: "stream by GET", method: "GET", path: "/raft/stream", wantCode: 405, wantHeader: http.Header{"Allow": {"POST"}}},
		{name: "stream from another cluster", method: "POST", path: "/raft/stream",
			header:   http.Header{"X-Etcd-Cluster-Id": {"1"}, "X-Server-From": {"99"}, "X-Raft-To": {hexID(s.node.ID())}},
			wantCode: 412, wantBody: regexp.MustCompile(`^cluster ID mismatch\n$`)},
		{name: "stream to another member", method: "POST", path: "/raft/snapshot/resume",
			header:   http.Header{"X-Etcd-Cluster-Id": {cid}, "X-Server-From": {"99"}, "X-Raft-To": {"98"}},
			wantCode: 412, wantBody: regexp.MustCompile(`^to field mismatch\n$`)},
		{name: "elsewhere", method: "GET", path: "/v3/kv/range", wantCode: 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx(t), c.method, base+c.path, bytes.NewReader([]byte(c.body)))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range c.header {
				req.Header[k] = v
			}
			resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.wantCode || resp.ProtoMajor != 1 || c.wantBody != nil && !c.wantBody.Match(b) {
				t.Fatalf("%s %s: %s %d %q, want %d matching %v", c.method, c.path, resp.Proto, resp.StatusCode, b, c.wantCode, c.wantBody)
			}
			for k, v := range c.wantHeader {
				if got := resp.Header.Values(k); strings.Join(got, ",") != strings.Join(v, ",") {
					t.Errorf("header %s: %q, want %q", k, got, v)
				}
			}
		})
	}
}

// jsonNumber is how encoding/json writes n.
func jsonNumber(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
