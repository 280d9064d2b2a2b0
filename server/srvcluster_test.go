package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
)

// fakeDNS answers SRV lookups from a table and resolves "localhost" and
// IPs, as a test's DNS.
type fakeDNS map[string][]*net.SRV

func (d fakeDNS) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	key := "_" + service + "._" + proto + "." + name
	if rs, ok := d[key]; ok {
		return key, rs, nil
	}
	return "", nil, &net.DNSError{Err: "no such host", Name: key, IsNotFound: true}
}

func (fakeDNS) LookupHost(_ context.Context, host string) ([]string, error) {
	if host == "localhost" {
		return []string{"127.0.0.1"}, nil
	}
	if net.ParseIP(host) != nil {
		return []string{host}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestDiscoverySRVBootstrap: three members bootstrap one cluster from a
// domain's _etcd-server._tcp records, each finding itself by address
// (the records name localhost, the members advertise 127.0.0.1), and
// agree on its ids; a restarted member needs no DNS.
func TestDiscoverySRVBootstrap(t *testing.T) {
	const n = 3
	ports := freePorts(t, 2*n)
	dns := fakeDNS{}
	cfgs := make([]Config, n)
	for i := range cfgs {
		cfg := DefaultConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.DataDir = t.TempDir()
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i])
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		cfg.ListenClientURLs, cfg.AdvertiseClientURLs = []string{client}, []string{client}
		cfg.ListenPeerURLs, cfg.InitialAdvertisePeerURLs = []string{peer}, []string{peer}
		cfg.DiscoverySRV, cfg.DiscoverySRVName, cfg.Resolver = "example.com", "test", dns
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		cfgs[i] = cfg
		key := "_etcd-server-test._tcp.example.com"
		dns[key] = append(dns[key], &net.SRV{Target: "localhost.", Port: uint16(ports[2*i+1])})
	}
	servers := make([]*Server, n)
	for i := range servers {
		s, err := New(cfgs[i])
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		servers[i] = s
		t.Cleanup(func() { s.Stop() })
	}
	_, ml := writeAndList(t, cfgs)
	var peers []string
	for _, m := range ml.Members {
		peers = append(peers, m.PeerURLs...)
	}
	slices.Sort(peers)
	if len(ml.Members) != n || !strings.HasPrefix(peers[0], "http://localhost:") {
		t.Fatalf("members %v, want %d with the records' peer URLs", ml.Members, n)
	}
	servers[0].Stop()
	cfgs[0].Resolver = fakeDNS{} // no records any more
	s, err := New(cfgs[0])
	if err != nil {
		t.Fatalf("restart without DNS: %v", err)
	}
	s.Stop()
}

// TestDiscoverySRVRefusals: no records, records that do not name the
// member, and a scheme that differs from the member's, as etcd refuses.
func TestDiscoverySRVRefusals(t *testing.T) {
	base := DefaultConfig()
	base.Name = "m0"
	base.InitialAdvertisePeerURLs = []string{"http://127.0.0.1:12380"}
	base.ListenPeerURLs = base.InitialAdvertisePeerURLs
	base.DiscoverySRV = "example.com"
	base.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	other := []*net.SRV{{Target: "127.0.0.2.", Port: 2380}}
	self := []*net.SRV{{Target: "localhost.", Port: 12380}}
	for _, tt := range []struct {
		name string
		dns  fakeDNS
		want string
	}{
		{"no records", fakeDNS{}, "error querying DNS SRV records for _etcd-server"},
		{"not named", fakeDNS{"_etcd-server._tcp.example.com": other}, `cannot find local etcd member "m0" in SRV records`},
		{"scheme", fakeDNS{"_etcd-server-ssl._tcp.example.com": self}, "has scheme mismatch with expected peer http://127.0.0.1:12380"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			cfg.DataDir, cfg.Resolver = t.TempDir(), tt.dns
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("%v, want %q", err, tt.want)
			}
		})
	}
	cfg := base
	cfg.Discovery.Endpoints, cfg.Discovery.Token = []string{"127.0.0.1:1"}, "tok"
	if err := cfg.Validate(); err != ErrConflictBootstrap {
		t.Fatalf("with --discovery-endpoints: %v", err)
	}
}
