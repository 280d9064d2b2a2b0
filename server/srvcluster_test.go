package server

import (
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/detcd/detcd/internal/dnstest"
)

// TestDiscoverySRVBootstrap: three members bootstrap one cluster from a
// domain's _etcd-server._tcp records, each finding itself by address
// (the records name localhost, the members advertise 127.0.0.1), and
// agree on its ids; a restarted member needs no DNS.
func TestDiscoverySRVBootstrap(t *testing.T) {
	const n = 3
	dns := dnstest.Table{}
	cfgs := memberConfigs(t, n, func(_ int, c *Config) {
		c.DiscoverySRV, c.DiscoverySRVName, c.Resolver = "example.com", "test", dns
		peer, _ := url.Parse(c.InitialAdvertisePeerURLs[0])
		port, _ := strconv.Atoi(peer.Port())
		key := "_etcd-server-test._tcp.example.com"
		dns[key] = append(dns[key], &net.SRV{Target: "localhost.", Port: uint16(port)})
	})
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
	cfgs[0].Resolver = dnstest.Table{} // no records any more
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
		dns  dnstest.Table
		want string
	}{
		{"no records", dnstest.Table{}, "error querying DNS SRV records for _etcd-server"},
		{"not named", dnstest.Table{"_etcd-server._tcp.example.com": other}, `cannot find local etcd member "m0" in SRV records`},
		{"scheme", dnstest.Table{"_etcd-server-ssl._tcp.example.com": self}, "has scheme mismatch with expected peer http://127.0.0.1:12380"},
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
