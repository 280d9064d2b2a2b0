package tcpproxy_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/detcd/detcd/server"
	"github.com/detcd/detcd/tcpproxy"
)

// startMember starts a one-member detcd cluster on a free loopback port
// with key "who" set to name, and returns it and its client address.
func startMember(t *testing.T, name, addr string) (*server.Server, string) {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ListenClientURLs = []string{"http://" + addr}
	cfg.AdvertiseClientURLs = []string{"http://127.0.0.1:2379"}
	cfg.ListenPeerURLs = []string{"http://127.0.0.1:0"}
	cfg.InitialAdvertisePeerURLs = []string{"http://127.0.0.1:2380"}
	cfg.InitialCluster = "default=http://127.0.0.1:2380"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	host := s.Addrs()[0]
	if u, err := url.Parse(host); err == nil && u.Host != "" {
		host = u.Host
	}
	cli := client(t, host)
	if _, err := cli.Put(ctx(t), "who", name); err != nil {
		t.Fatal(err)
	}
	return s, host
}

func client(t *testing.T, addr string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// who asks, through a new connection to addr, which member answers.
func who(t *testing.T, addr string) (string, error) {
	t.Helper()
	cli := client(t, addr)
	resp, err := cli.Get(ctx(t), "who")
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) != 1 {
		return "", fmt.Errorf("who: %d keys", len(resp.Kvs))
	}
	return string(resp.Kvs[0].Value), nil
}

// TestProxyFailover: clientv3 works through the proxy; with the first
// endpoint down, connections go to the second; once the first is back,
// the monitor makes it used again.
func TestProxyFailover(t *testing.T) {
	a, addrA := startMember(t, "a", "127.0.0.1:0")
	_, addrB := startMember(t, "b", "127.0.0.1:0")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpproxy.Proxy{
		Listener:        l,
		Endpoints:       []tcpproxy.Endpoint{{Addr: addrA}, {Addr: addrB}},
		MonitorInterval: 50 * time.Millisecond,
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve() }()
	proxy := l.Addr().String()

	got := map[string]bool{}
	for range 2 {
		w, err := who(t, proxy)
		if err != nil {
			t.Fatal(err)
		}
		got[w] = true
	}
	if !got["a"] || !got["b"] {
		t.Fatalf("two connections reached %v, want both members in turn", got)
	}

	a.Stop()
	for i := range 3 {
		if w, err := who(t, proxy); err != nil || w != "b" {
			t.Fatalf("connection %d with a down: %q, %v; want b", i, w, err)
		}
	}

	startMember(t, "a2", addrA)
	const attemptsMax = 200
	for i := 0; ; i++ {
		if i == attemptsMax {
			t.Fatalf("a restarted, but %d connections never reached it", attemptsMax)
		}
		if w, err := who(t, proxy); err == nil && w == "a2" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
}
