package server

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// httpGet fetches url with client and returns the status and protocol
// major version, or the error.
func httpGet(client *http.Client, url string) (int, int, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.ProtoMajor, nil
}

var (
	insecureTLS = &tls.Config{InsecureSkipVerify: true}
	// https11 never negotiates HTTP/2; https2 does.
	https11 = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: insecureTLS, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	https2  = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: insecureTLS, ForceAttemptHTTP2: true}}
	plain   = &http.Client{Timeout: 5 * time.Second}
)

// TestHTTPAndHTTPSOnOnePort: http and https client URLs on one address
// share one port, as etcd's connection multiplexing does: gRPC and HTTP,
// in the clear and over TLS (HTTP/1.1 and HTTP/2).
func TestHTTPAndHTTPSOnOnePort(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	s, _ := testServer(t, t.TempDir(), func(c *Config) {
		c.ListenClientURLs = []string{"http://" + addr, "https://" + addr}
		c.AdvertiseClientURLs = c.ListenClientURLs
		c.ClientTLS = TLSInfo{AutoTLS: true}
	})
	if got := s.Addrs(); len(got) != 1 || got[0] != addr {
		t.Fatalf("client addresses %v, want one, %s", got, addr)
	}
	c := ctx(t)
	if _, err := newClient(t, clientv3.Config{Endpoints: []string{"http://" + addr}}).Put(c, "k", "v"); err != nil {
		t.Fatalf("gRPC in the clear: %v", err)
	}
	if _, err := tlsClient(t, addr, insecureTLS).Get(c, "k"); err != nil {
		t.Fatalf("gRPC over TLS: %v", err)
	}
	for _, tc := range []struct {
		name   string
		client *http.Client
		url    string
		proto  int
	}{
		{"http", plain, "http://" + addr + "/health", 1},
		{"https HTTP/1.1", https11, "https://" + addr + "/health", 1},
		{"https HTTP/2", https2, "https://" + addr + "/metrics", 2},
	} {
		if code, proto, err := httpGet(tc.client, tc.url); err != nil || code != http.StatusOK || proto != tc.proto {
			t.Errorf("%s: %d HTTP/%d %v", tc.name, code, proto, err)
		}
	}
}

// TestListenClientHTTPURLs: with --listen-client-http-urls, HTTP is
// served there and no longer on the client URLs, which serve gRPC only.
func TestListenClientHTTPURLs(t *testing.T) {
	ports := freePorts(t, 2)
	grpcAddr, httpAddr := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	testServer(t, t.TempDir(), func(c *Config) {
		c.ListenClientURLs, c.AdvertiseClientURLs = []string{"http://" + grpcAddr}, []string{"http://" + grpcAddr}
		c.ListenClientHTTPURLs = []string{"http://" + httpAddr}
	})
	if _, err := newClient(t, clientv3.Config{Endpoints: []string{grpcAddr}}).Put(ctx(t), "k", "v"); err != nil {
		t.Fatalf("gRPC on the client URL: %v", err)
	}
	if _, err := newClient(t, clientv3.Config{Endpoints: []string{httpAddr}}).Put(shortCtx(t), "k", "v"); err == nil {
		t.Fatal("gRPC served on the HTTP URL")
	}
	if code, _, err := httpGet(plain, "http://"+httpAddr+"/health"); err != nil || code != http.StatusOK {
		t.Fatalf("/health on the HTTP URL: %d %v", code, err)
	}
	if code, _, err := httpGet(plain, "http://"+grpcAddr+"/health"); err == nil && code == http.StatusOK {
		t.Fatal("/health served on the gRPC-only client URL")
	}
}
