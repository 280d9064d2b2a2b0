package main

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/detcd/detcd/internal/dnstest"
	"github.com/detcd/detcd/tcpproxy"
)

// TestGatewayFlags: flags before and after "start", as cobra takes them;
// --endpoints replaces its default, then appends.
func TestGatewayFlags(t *testing.T) {
	tests := []struct {
		args      []string
		endpoints []string
		sub       []string
		retry     time.Duration
	}{
		{[]string{"start"}, []string{"127.0.0.1:2379"}, []string{"start"}, time.Minute},
		{[]string{"--endpoints=a:1,b:2", "start"}, []string{"a:1", "b:2"}, []string{"start"}, time.Minute},
		{[]string{"start", "--endpoints", "a:1", "--endpoints=b:2", "--retry-delay=3s"}, []string{"a:1", "b:2"}, []string{"start"}, 3 * time.Second},
		{nil, []string{"127.0.0.1:2379"}, nil, time.Minute},
	}
	for _, tt := range tests {
		f, _, err := parseGatewayFlags(tt.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if !slices.Equal(f.endpoints.values, tt.endpoints) || !slices.Equal(f.subcommands, tt.sub) || f.retryDelay != tt.retry {
			t.Errorf("%v: endpoints %v, subcommands %v, retry %v", tt.args, f.endpoints.values, f.subcommands, f.retryDelay)
		}
	}
}

// TestNewGateway: endpoints from SRV records when they give some, else
// --endpoints with their schemes dropped; etcd's refusals.
func TestNewGateway(t *testing.T) {
	dns := dnstest.Table{
		"_etcd-client._tcp.example.com":     {{Target: "10.0.0.1", Port: 2379, Priority: 1, Weight: 3}},
		"_etcd-client-ssl._tcp.example.com": {{Target: "10.0.0.2", Port: 2379}},
		"_etcd-client-x._tcp.plain.com":     {{Target: "10.0.0.3", Port: 2379}},
	}
	tests := []struct {
		name    string
		args    []string
		want    []tcpproxy.Endpoint
		wantErr string
	}{
		{"endpoints", []string{"--endpoints=http://127.0.0.1:1,127.0.0.1:2"}, []tcpproxy.Endpoint{{Addr: "127.0.0.1:1"}, {Addr: "127.0.0.1:2"}}, ""},
		{"srv insecure", []string{"--discovery-srv=example.com", "--insecure-discovery"},
			[]tcpproxy.Endpoint{{Addr: "10.0.0.2:2379"}, {Addr: "10.0.0.1:2379", Priority: 1, Weight: 3}}, ""},
		{"srv insecure records refused", []string{"--discovery-srv=plain.com", "--discovery-srv-name=x", "--endpoints=127.0.0.1:5"},
			[]tcpproxy.Endpoint{{Addr: "127.0.0.1:5"}}, ""},
		{"srv finds none", []string{"--discovery-srv=nowhere.com", "--endpoints=127.0.0.1:5"}, nil, "dns lookup errors"},
		{"bad endpoint", []string{"--endpoints=nohost"}, nil, `error parsing endpoint "nohost"`},
		{"loop", []string{"--endpoints=localhost:23790", "--listen-addr=127.0.0.1:23790"}, nil, "should not resolve to the gateway listen addr"},
		{"bad listen", []string{"--listen-addr=x"}, nil, "failed to validate listen address: x"},
	}
	log := slog.New(slog.DiscardHandler)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"start"}, tt.args...)
			if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--listen-addr") }) {
				args = append(args, "--listen-addr=127.0.0.1:0")
			}
			f, _, err := parseGatewayFlags(args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			p, err := newGateway(context.Background(), f, log, dns)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer p.Listener.Close()
			if !slices.Equal(p.Endpoints, tt.want) {
				t.Fatalf("endpoints %v, want %v", p.Endpoints, tt.want)
			}
		})
	}
}
