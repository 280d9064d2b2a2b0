package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/detcd/detcd/internal/testpki"
)

func tlsClient(t *testing.T, addr string, cfg *tls.Config) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"https://" + addr}, TLS: cfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// shortCtx bounds a request expected to fail.
func shortCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestClientTLS: with --client-cert-auth, a client with a certificate
// from the trusted CA gets KV, watch and the HTTP endpoints over TLS;
// clients without one, with a stranger's, or without TLS get nothing.
func TestClientTLS(t *testing.T) {
	p := testpki.New(t)
	logs := &logBuffer{}
	s, _ := testServer(t, t.TempDir(), func(c *Config) {
		c.ListenClientURLs = []string{"https://127.0.0.1:0"}
		c.AdvertiseClientURLs = []string{"https://127.0.0.1:2379"}
		c.ClientTLS = TLSInfo{CertFile: p.Cert, KeyFile: p.Key, TrustedCAFile: p.CA, ClientCertAuth: true}
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	addr := s.Addrs()[0]
	good := p.ClientTLS(t, p.ClientCert, p.ClientKey)
	cli := tlsClient(t, addr, good)
	wch := cli.Watch(ctx(t), "k")
	if _, err := cli.Put(ctx(t), "k", "v"); err != nil {
		t.Fatalf("put over TLS: %v", err)
	}
	if r, err := cli.Get(ctx(t), "k"); err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("get over TLS: %v %v", r, err)
	}
	if w := <-wch; w.Err() != nil || len(w.Events) != 1 {
		t.Fatalf("watch over TLS: %+v", w)
	}
	for _, h2 := range []bool{false, true} {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: good, ForceAttemptHTTP2: h2}, Timeout: 5 * time.Second}
		resp, err := hc.Get("https://" + addr + "/health")
		if err != nil {
			t.Fatalf("GET /health over TLS (h2 %v): %v", h2, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `"health":"true"`) || (resp.ProtoMajor == 2) != h2 {
			t.Errorf("GET /health over TLS (h2 %v): %s %s", h2, resp.Proto, body)
		}
	}
	for name, cfg := range map[string]*tls.Config{
		"no client certificate": p.ClientTLS(t, "", ""),
		"a stranger's":          p.ClientTLS(t, p.StrangerCert, p.StrangerKy),
	} {
		if _, err := tlsClient(t, addr, cfg).Put(shortCtx(t), "k", "x"); err == nil {
			t.Errorf("%s: put succeeded", name)
		}
	}
	// etcd's message for a refused handshake, which its tests wait for.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), `"msg":"rejected connection on client endpoint","remote-addr":"127.0.0.1:`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no refused handshake logged as etcd logs it:\n%s", logs.String())
		}
	}
	plain, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.Put(shortCtx(t), "k", "x"); err == nil {
		t.Error("a client without TLS could put")
	}
	if r, err := cli.Get(ctx(t), "k"); err != nil || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("a refused client's write landed: %v %v", r, err)
	}
}

// TestTrustedCARequiresClientCert: as etcd, a trusted CA file requires
// client certificates signed by it even without --client-cert-auth.
func TestTrustedCARequiresClientCert(t *testing.T) {
	p := testpki.New(t)
	s, _ := testServer(t, t.TempDir(), func(c *Config) {
		c.ListenClientURLs = []string{"https://127.0.0.1:0"}
		c.AdvertiseClientURLs = []string{"https://127.0.0.1:2379"}
		c.ClientTLS = TLSInfo{CertFile: p.Cert, KeyFile: p.Key, TrustedCAFile: p.CA}
	})
	addr := s.Addrs()[0]
	if _, err := tlsClient(t, addr, p.ClientTLS(t, p.ClientCert, p.ClientKey)).Put(ctx(t), "k", "v"); err != nil {
		t.Fatalf("put with a client certificate: %v", err)
	}
	for name, cfg := range map[string]*tls.Config{
		"no client certificate": p.ClientTLS(t, "", ""),
		"a stranger's":          p.ClientTLS(t, p.StrangerCert, p.StrangerKy),
	} {
		if _, err := tlsClient(t, addr, cfg).Put(shortCtx(t), "k", "x"); err == nil {
			t.Errorf("%s: put succeeded", name)
		}
	}
}

// TestAutoTLS: --auto-tls serves TLS with a self-signed certificate kept in
// the data directory, the same one after a restart.
func TestAutoTLS(t *testing.T) {
	dir := t.TempDir()
	mod := func(c *Config) {
		c.ListenClientURLs = []string{"https://127.0.0.1:0"}
		c.AdvertiseClientURLs = []string{"https://127.0.0.1:2379"}
		c.ClientTLS = TLSInfo{AutoTLS: true}
		c.PeerTLS = TLSInfo{AutoTLS: true} // peer URLs stay http: nothing to generate
	}
	s, _ := testServer(t, dir, mod)
	cli := tlsClient(t, s.Addrs()[0], &tls.Config{InsecureSkipVerify: true})
	if _, err := cli.Put(ctx(t), "k", "v"); err != nil {
		t.Fatalf("put over auto TLS: %v", err)
	}
	certFile := filepath.Join(dir, "fixtures", "client", "cert.pem")
	first, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatalf("auto TLS certificate: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "fixtures", "peer")); !os.IsNotExist(err) {
		t.Errorf("a peer certificate was generated for http peer URLs: %v", err)
	}
	cli.Close()
	s.Stop()
	s, _ = testServer(t, dir, mod)
	again, _ := os.ReadFile(certFile)
	if !bytes.Equal(first, again) {
		t.Error("a restart generated a new auto TLS certificate")
	}
	cli = tlsClient(t, s.Addrs()[0], &tls.Config{InsecureSkipVerify: true})
	if r, err := cli.Get(ctx(t), "k"); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("get after restart: %v %v", r, err)
	}
}

// TestPeerTLS: three members with https peer URLs and
// --peer-client-cert-auth replicate; a peer without a certificate from the
// peer CA is refused.
func TestPeerTLS(t *testing.T) {
	p := testpki.New(t)
	tc := newTestClusterWith(t, 3, "https", func(c *Config) {
		c.PeerTLS = TLSInfo{CertFile: p.Cert, KeyFile: p.Key, TrustedCAFile: p.CA, ClientCertAuth: true}
	})
	tc.leader()
	if _, err := tc.client(0).Put(ctx(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	if r, err := tc.client(2).Get(ctx(t), "k"); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("linearizable get on another member: %v %v", r, err)
	}
	peerURL := tc.cfgs[1].InitialAdvertisePeerURLs[0]
	for name, cfg := range map[string]*tls.Config{
		"no certificate":       p.ClientTLS(t, "", ""),
		"a stranger's":         p.ClientTLS(t, p.StrangerCert, p.StrangerKy),
		"the peer CA's member": p.ClientTLS(t, p.Cert, p.Key),
	} {
		asker := peerDialer{tls: cfg}
		_, err := asker.fetchCluster(shortCtx(t), []string{peerURL})
		if want := name == "the peer CA's member"; (err == nil) != want {
			t.Errorf("%s: asking a member for the cluster: %v", name, err)
		}
	}
}

// TestTLSReload: a rotated certificate is served without a restart.
func TestTLSReload(t *testing.T) {
	p := testpki.New(t)
	r, err := newCertReloader(p.Cert, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := r.get()
	for _, f := range [][2]string{{p.ClientCert, p.Cert}, {p.ClientKey, p.Key}} {
		b, _ := os.ReadFile(f[0])
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Minute)
		os.Chtimes(f[1], later, later)
	}
	r.mu.Lock()
	r.checked = time.Time{}
	r.mu.Unlock()
	after, err := r.get()
	if err != nil || bytes.Equal(before.Certificate[0], after.Certificate[0]) {
		t.Fatalf("the rotated certificate was not loaded: %v", err)
	}
	os.Remove(p.Cert)
	r.mu.Lock()
	r.checked = time.Time{}
	r.mu.Unlock()
	if kept, err := r.get(); err != nil || kept != after {
		t.Fatalf("a certificate file gone mid-rotation: %v", err)
	}
}

// TestConfigValidate: bad settings are errors at start, with etcd's
// messages where etcd has one.
func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"https client URL without a certificate", func(c *Config) { c.ListenClientURLs = []string{"https://127.0.0.1:2379"} },
			"TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379 with HTTPS scheme"},
		{"https peer URL without a certificate", func(c *Config) { c.ListenPeerURLs = []string{"https://127.0.0.1:2380"} },
			"TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url https://127.0.0.1:2380 with HTTPS scheme"},
		{"cert without key", func(c *Config) { c.ClientTLS.CertFile = "c.pem" }, "--cert-file and --key-file must be given together"},
		{"peer key without cert", func(c *Config) { c.PeerTLS.KeyFile = "k.pem" }, "--peer-cert-file and --peer-key-file must be given together"},
		{"unknown TLS version", func(c *Config) { c.TLSMinVersion = "TLS1.1" }, "unknown TLS version"},
		{"min above max", func(c *Config) { c.TLSMinVersion, c.TLSMaxVersion = "TLS1.3", "TLS1.2" }, "is greater than"},
		{"unknown cipher suite", func(c *Config) { c.CipherSuites = []string{"TLS_NOPE"} }, `unexpected TLS cipher suite "TLS_NOPE"`},
		{"cipher suites with TLS 1.3 only", func(c *Config) {
			c.TLSMinVersion, c.CipherSuites = "TLS1.3", []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}
		}, "cannot be used with --tls-min-version TLS1.3"},
		{"ftp URL", func(c *Config) { c.ListenClientURLs = []string{"ftp://127.0.0.1:2379"} }, "URL scheme must be http, https, unix, or unixs"},
		{"short election timeout", func(c *Config) { c.ElectionTimeout = 300 * time.Millisecond }, "should be at least as 5 times as --heartbeat-interval"},
		{"bad cluster state", func(c *Config) { c.InitialClusterState = "old" }, "invalid value \"old\" for --initial-cluster-state"},
		{"missing from initial cluster", func(c *Config) { c.Name = "other" }, "couldn't find local name \"other\""},
		{"unknown feature gate", func(c *Config) { c.FeatureGates = "Nope=true" }, "unrecognized feature gate: Nope"},
		{"unknown auth token kind", func(c *Config) { c.AuthToken = "magic" }, "want simple or jwt"},
		{"bcrypt cost", func(c *Config) { c.BcryptCost = 99 }, "invalid --bcrypt-cost 99"},
		{"compact hash check time", func(c *Config) { c.CompactHashCheckTime = 0 }, "--compact-hash-check-time must be >0 (set to 0s)"},
		{"negative corrupt check time", func(c *Config) { c.CorruptCheckTime = -time.Second }, "--corrupt-check-time must not be negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	c := DefaultConfig()
	c.ClientTLS.CertFile, c.ClientTLS.KeyFile = "c.pem", "k.pem"
	c.ListenClientURLs = []string{"https://127.0.0.1:2379"}
	c.CipherSuites = []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}
	if err := c.Validate(); err != nil {
		t.Fatalf("a good TLS configuration: %v", err)
	}
	c.ClientTLS.CertFile = filepath.Join(t.TempDir(), "missing.pem")
	c.DataDir = t.TempDir()
	if _, err := New(c); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("a missing certificate file: %v, want an error naming it", err)
	}
}

// TestClientCertUser: with auth on, a request without a token acts as the
// user named by its client certificate's common name, as etcd's do.
func TestClientCertUser(t *testing.T) {
	p := testpki.New(t)
	s, _ := testServer(t, t.TempDir(), func(c *Config) {
		c.ListenClientURLs = []string{"https://127.0.0.1:0"}
		c.AdvertiseClientURLs = []string{"https://127.0.0.1:2379"}
		c.ClientTLS = TLSInfo{CertFile: p.Cert, KeyFile: p.Key, TrustedCAFile: p.CA, ClientCertAuth: true}
		c.BcryptCost = 4
	})
	addr := s.Addrs()[0]
	// testpki's client certificate has the common name "client".
	admin := tlsClient(t, addr, p.ClientTLS(t, p.ClientCert, p.ClientKey))
	enableAuth(t, admin)
	if _, err := admin.Put(ctx(t), "/k", "v"); err == nil {
		t.Fatal("a certificate user without permissions could put")
	}
	rootCli := userClientWith(t, []string{"https://" + addr}, p.ClientTLS(t, p.ClientCert, p.ClientKey), "root", "pw")
	for _, step := range []func() error{
		func() error { _, err := rootCli.UserAdd(ctx(t), "client", "x"); return err },
		func() error { _, err := rootCli.UserGrantRole(ctx(t), "client", "app"); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.Put(ctx(t), "/app/cert", "v"); err != nil {
		t.Fatalf("the certificate's user put in its range: %v", err)
	}
	if _, err := admin.Put(ctx(t), "/other", "v"); err == nil {
		t.Fatal("the certificate's user put outside its range")
	}
	if _, err := admin.Put(ctx(t), "/app/x", "v"); err != nil {
		t.Fatal(err)
	}
	checkReads(t, admin, rootCli)
}

// TestTLSRevocationAndNames: a client certificate on the CRL is refused;
// a peer whose certificate lacks the allowed common name is refused.
func TestTLSRevocationAndNames(t *testing.T) {
	p := testpki.New(t)
	s, _ := testServer(t, t.TempDir(), func(c *Config) {
		c.ListenClientURLs = []string{"https://127.0.0.1:0"}
		c.AdvertiseClientURLs = []string{"https://127.0.0.1:2379"}
		c.ClientTLS = TLSInfo{CertFile: p.Cert, KeyFile: p.Key, TrustedCAFile: p.CA, ClientCertAuth: true, CRLFile: p.CRL(t, p.ClientCert)}
	})
	addr := s.Addrs()[0]
	if _, err := tlsClient(t, addr, p.ClientTLS(t, p.ClientCert, p.ClientKey)).Put(shortCtx(t), "k", "v"); err == nil {
		t.Error("a revoked certificate could put")
	}
	if _, err := tlsClient(t, addr, p.ClientTLS(t, p.Cert, p.Key)).Put(ctx(t), "k", "v"); err != nil {
		t.Errorf("a certificate not on the CRL: %v", err)
	}

	tc := newTestClusterWith(t, 1, "https", func(c *Config) {
		c.PeerTLS = TLSInfo{CertFile: p.Cert, KeyFile: p.Key, TrustedCAFile: p.CA, ClientCertAuth: true, AllowedCNs: []string{"member"}}
	})
	peerURL := tc.cfgs[0].InitialAdvertisePeerURLs[0]
	for name, cert := range map[string][2]string{"member": {p.Cert, p.Key}, "client": {p.ClientCert, p.ClientKey}} {
		asker := peerDialer{tls: p.ClientTLS(t, cert[0], cert[1])}
		_, err := asker.fetchCluster(shortCtx(t), []string{peerURL})
		if (err == nil) != (name == "member") {
			t.Errorf("a peer with common name %q: %v", name, err)
		}
	}
}

// TestCipherSuiteNames: --cipher-suites takes Go's names and, as etcd's
// tlsutil does, the ChaCha20 suites under their older names (etcd's e2e
// TestCurlV3CipherSuites* pass them).
func TestCipherSuiteNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		want uint16
	}{
		{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
		{"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256},
		{"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
		{"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
	} {
		c := Config{CipherSuites: []string{tc.name}}
		base, err := c.tlsBase()
		if err != nil || len(base.CipherSuites) != 1 || base.CipherSuites[0] != tc.want {
			t.Errorf("%s: %v %v, want suite %#x", tc.name, base, err, tc.want)
		}
	}
}
