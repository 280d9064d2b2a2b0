package main

import (
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/detcd/detcd/server"
)

// TestDiscoveryFlags: etcd's --discovery-* flags reach the configuration;
// with --initial-cluster too they are refused, as etcd refuses them.
func TestDiscoveryFlags(t *testing.T) {
	cfg, _, _, err := parseFlags([]string{"--name=m1", "--discovery-endpoints=127.0.0.1:1,127.0.0.1:2", "--discovery-token=tok",
		"--discovery-dial-timeout=3s", "--discovery-insecure-transport=false", "--discovery-cacert=ca.pem", "--discovery-user=u"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Discovery
	if !slices.Equal(d.Endpoints, []string{"127.0.0.1:1", "127.0.0.1:2"}) || d.Token != "tok" || d.DialTimeout != 3*time.Second ||
		d.RequestTimeout != 5*time.Second || d.InsecureTransport || d.CAFile != "ca.pem" || d.User != "u" {
		t.Fatalf("discovery config %+v", d)
	}
	_, _, _, err = parseFlags([]string{"--discovery-endpoints=127.0.0.1:1", "--discovery-token=tok", "--initial-cluster=a=http://127.0.0.1:2380"}, io.Discard)
	if !errors.Is(err, server.ErrConflictBootstrap) {
		t.Fatalf("with --initial-cluster: %v", err)
	}
	cfg, _, _, err = parseFlags([]string{"--name=m1", "--discovery-srv=example.com", "--discovery-srv-name=prod"}, io.Discard)
	if err != nil || cfg.DiscoverySRV != "example.com" || cfg.DiscoverySRVName != "prod" {
		t.Fatalf("--discovery-srv: %v %q %q", err, cfg.DiscoverySRV, cfg.DiscoverySRVName)
	}
	_, _, _, err = parseFlags([]string{"--discovery-srv=example.com", "--initial-cluster=a=http://127.0.0.1:2380"}, io.Discard)
	if !errors.Is(err, server.ErrConflictBootstrap) {
		t.Fatalf("--discovery-srv with --initial-cluster: %v", err)
	}
}
