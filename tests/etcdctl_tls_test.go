package tests

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/detcd/detcd/internal/testpki"
)

// TestEtcdctlTLS: etcdctl with --cacert/--cert/--key against a 3-member
// cluster of binaries whose client and peer URLs are https and that
// require certificates from their CA on both; a client without one, or
// with a stranger's, is refused. Then a member with --auto-tls serves
// etcdctl --insecure-skip-tls-verify.
func TestEtcdctlTLS(t *testing.T) {
	p := testpki.New(t)
	bin, ctl := binaries(t)
	c := &ctlCluster{t: t, ctlBin: ctl, bin: bin, members: map[string]*detcdProc{}}
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: p.ClientTLS(t, p.ClientCert, p.ClientKey)}}
	const n = 3
	var initial, eps []string
	ports := make([][2]int, n)
	for i := range ports {
		ports[i] = [2]int{freePort(t), freePort(t)}
		initial = append(initial, fmt.Sprintf("m%d=https://127.0.0.1:%d", i, ports[i][1]))
		eps = append(eps, fmt.Sprintf("https://127.0.0.1:%d", ports[i][0]))
	}
	var procs []*proc
	for i := range ports {
		peer := fmt.Sprintf("https://127.0.0.1:%d", ports[i][1])
		procs = append(procs, startProc(t, fmt.Sprintf("m%d", i), bin,
			"--name", fmt.Sprintf("m%d", i), "--data-dir", t.TempDir(),
			"--listen-client-urls", eps[i], "--advertise-client-urls", eps[i],
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","), "--log-level", "warn",
			"--cert-file", p.Cert, "--key-file", p.Key, "--trusted-ca-file", p.CA, "--client-cert-auth",
			"--peer-cert-file", p.Cert, "--peer-key-file", p.Key, "--peer-trusted-ca-file", p.CA, "--peer-client-cert-auth"))
	}
	for i, pr := range procs {
		waitHealthyWith(t, pr, eps[i], hc)
	}
	tlsArgs := []string{"--cacert", p.CA, "--cert", p.ClientCert, "--key", p.ClientKey}
	if out := c.ctl(eps[:1], append(tlsArgs, "put", "k", "v")...); out != "OK\n" {
		t.Fatalf("put: %q", out)
	}
	if out := c.ctl(eps[2:], append(tlsArgs, "get", "k")...); out != "k\nv\n" {
		t.Fatalf("linearizable get on another member: %q", out)
	}
	if out := c.ctl(eps, append(tlsArgs, "endpoint", "health")...); strings.Count(out, "is healthy") != n {
		t.Fatalf("endpoint health: %q", out)
	}
	for name, args := range map[string][]string{
		"no client certificate": {"--cacert", p.CA},
		"a stranger's":          {"--cacert", p.CA, "--cert", p.StrangerCert, "--key", p.StrangerKy},
		"no TLS":                {},
	} {
		bad := eps[:1]
		if name == "no TLS" {
			bad = []string{strings.Replace(eps[0], "https", "http", 1)}
		}
		if out, err := c.run(bad, true, append(args, "--command-timeout=2s", "put", "k", "x")...); err == nil {
			t.Errorf("%s: put succeeded: %q", name, out)
		}
	}
	if out := c.ctl(eps[1:2], append(tlsArgs, "get", "k", "--print-value-only")...); out != "v\n" {
		t.Fatalf("a refused client's put landed: %q", out)
	}

	client, peer := fmt.Sprintf("https://127.0.0.1:%d", freePort(t)), loopbackURL(freePort(t))
	auto := startProc(t, "auto", bin, "--name", "auto", "--data-dir", t.TempDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "auto="+peer, "--auto-tls", "--log-level", "warn")
	insecure := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: p.ClientTLS(t, "", "")}}
	insecure.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = true
	waitHealthyWith(t, auto, client, insecure)
	if out := c.ctl([]string{client}, "--insecure-skip-tls-verify", "put", "a", "b"); out != "OK\n" {
		t.Fatalf("put with --auto-tls: %q", out)
	}
}

// TestKubeadmFlags: the command line kubeadm writes into etcd's static
// pod (TLS on both sides, certificate auth, a metrics port) starts detcd,
// and etcd flags detcd takes without acting on them are accepted.
func TestKubeadmFlags(t *testing.T) {
	p := testpki.New(t)
	bin, ctl := binaries(t)
	client := fmt.Sprintf("https://127.0.0.1:%d", freePort(t))
	peer := fmt.Sprintf("https://127.0.0.1:%d", freePort(t))
	metrics := loopbackURL(freePort(t))
	pr := startProc(t, "kubeadm", bin,
		"--advertise-client-urls="+client, "--cert-file="+p.Cert, "--client-cert-auth=true",
		"--data-dir="+t.TempDir(), "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=node1="+peer, "--key-file="+p.Key, "--listen-client-urls="+client,
		"--listen-metrics-urls="+metrics, "--listen-peer-urls="+peer, "--name=node1",
		"--peer-cert-file="+p.Cert, "--peer-client-cert-auth=true", "--peer-key-file="+p.Key,
		"--peer-trusted-ca-file="+p.CA, "--snapshot-count=10000", "--trusted-ca-file="+p.CA,
		"--watch-progress-notify-interval=5s", "--feature-gates=InitialCorruptCheck=true",
		"--max-snapshots=3", "--max-wals=3", "--logger=zap", "--log-outputs=stderr",
		"--grpc-keepalive-min-time=5s", "--max-concurrent-streams=1000", "--log-level=warn")
	waitHealthy(t, pr, metrics) // the metrics port is plain http
	c := &ctlCluster{t: t, ctlBin: ctl, bin: bin}
	tlsArgs := []string{"--cacert", p.CA, "--cert", p.ClientCert, "--key", p.ClientKey}
	if out := c.ctl([]string{client}, append(tlsArgs, "put", "/registry/x", "1")...); out != "OK\n" {
		t.Fatalf("put: %q", out)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics on the metrics port: %s", resp.Status)
	}
	if !strings.Contains(pr.stderr.String(), "--max-wals=3") {
		t.Errorf("a flag without effect was not reported: %s", pr.stderr.String())
	}
}
