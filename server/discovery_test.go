package server

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestDiscoveryBootstrap: three members bootstrap one cluster through a
// one-member detcd discovery service, as etcd's v3 discovery does; a
// fourth is refused because the cluster is full; a restarted member
// ignores discovery and comes back from its data.
func TestDiscoveryBootstrap(t *testing.T) {
	disc, dcli := testServer(t, t.TempDir(), nil)
	const token = "8A591FAB-1D72-41FA-BDF2-A27162FDA1E0"
	if _, err := dcli.Put(ctx(t), "/_etcd/registry/"+token+"/_config/size", "3"); err != nil {
		t.Fatal(err)
	}
	cfgs := memberConfigs(t, 4, func(_ int, c *Config) {
		c.Discovery.Endpoints, c.Discovery.Token = disc.Addrs(), token
	})
	// New blocks until all three have registered: start them together.
	servers := make([]*Server, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range servers {
		wg.Go(func() { servers[i], errs[i] = New(cfgs[i]) })
	}
	wg.Wait()
	for i, s := range servers {
		if errs[i] != nil {
			t.Fatalf("member %d: %v", i, errs[i])
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Stop() })
	}
	if _, err := New(cfgs[3]); err == nil || !strings.Contains(err.Error(), "discovery: cluster is full") {
		t.Fatalf("a fourth member: %v, want the cluster full", err)
	}

	cli, ml := writeAndList(t, cfgs[:3])
	if len(ml.Members) != 3 {
		t.Fatalf("members %v, want 3", ml.Members)
	}
	for _, m := range ml.Members {
		if len(m.PeerURLs) != 1 || !strings.HasPrefix(m.Name, "m") {
			t.Fatalf("member %v", m)
		}
	}

	// Restarting from its data, a member does not ask the service again.
	servers[2].Stop()
	disc.Stop()
	s, err := New(cfgs[2])
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	resp, err := cli.Get(ctx(t), "key")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "value" {
		t.Fatalf("get after a restart: %v %v", resp, err)
	}
}

// TestDiscoveryConfigRules: etcd's refusals of discovery flags.
func TestDiscoveryConfigRules(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"token alone", func(c *Config) { c.Discovery.Token = "t" }, "both --discovery-token and --discovery-endpoints must be set"},
		{"endpoints alone", func(c *Config) { c.Discovery.Endpoints = []string{"127.0.0.1:1"} }, "both --discovery-token and --discovery-endpoints must be set"},
		{"empty endpoint", func(c *Config) { c.Discovery.Endpoints, c.Discovery.Token = []string{"a:1", " "}, "t" }, "--discovery-endpoints must not contain empty endpoints"},
		{"existing cluster", func(c *Config) {
			c.Discovery.Endpoints, c.Discovery.Token, c.InitialClusterState = []string{"a:1"}, "t", "existing"
		}, "discovery URL should not be set when joining existing initial cluster"},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		tt.mod(&cfg)
		if err := cfg.Validate(); err == nil || err.Error() != tt.wantErr {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.wantErr)
		}
	}
	cfg := DefaultConfig()
	cfg.Name, cfg.InitialAdvertisePeerURLs = "x", []string{"http://b:2", "http://a:1"}
	cfg.Discovery.Endpoints, cfg.Discovery.Token = []string{"a:1"}, "tok"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.InitialCluster != "x=http://a:1,x=http://b:2" || cfg.InitialClusterToken != "tok" {
		t.Fatalf("discovering member's initial cluster %q, token %q", cfg.InitialCluster, cfg.InitialClusterToken)
	}
}

// writeAndList writes a key through the members of cfgs, as a client of
// all of them, and returns the client and their member list.
func writeAndList(t *testing.T, cfgs []Config) (*clientv3.Client, *clientv3.MemberListResponse) {
	t.Helper()
	var eps []string
	for _, c := range cfgs {
		eps = append(eps, c.AdvertiseClientURLs...)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	if _, err := cli.Put(ctx(t), "key", "value"); err != nil {
		t.Fatal(err)
	}
	ml, err := cli.MemberList(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return cli, ml
}

// memberConfigs are the configurations of n members m0, m1, ... on free
// 127.0.0.1 ports, that bootstrap as mod has them do.
func memberConfigs(t *testing.T, n int, mod func(i int, c *Config)) []Config {
	t.Helper()
	ports := freePorts(t, 2*n)
	cfgs := make([]Config, n)
	for i := range cfgs {
		cfg := DefaultConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.DataDir = t.TempDir()
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i])
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		cfg.ListenClientURLs, cfg.AdvertiseClientURLs = []string{client}, []string{client}
		cfg.ListenPeerURLs, cfg.InitialAdvertisePeerURLs = []string{peer}, []string{peer}
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		mod(i, &cfg)
		cfgs[i] = cfg
	}
	return cfgs
}
