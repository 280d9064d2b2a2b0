package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/detcd/detcd/tcpproxy"
)

// gatewayFlags are etcd 3.7's `etcd gateway start` flags.
type gatewayFlags struct {
	listenAddr  string
	endpoints   stringSlice
	srv         tcpproxy.SRVConfig
	retryDelay  time.Duration
	subcommands []string
}

// stringSlice is a cobra string-slice flag: comma-separated values; the
// first use replaces the default, later uses append.
type stringSlice struct {
	values []string
	set    bool
}

func (s *stringSlice) String() string { return strings.Join(s.values, ",") }

func (s *stringSlice) Set(v string) error {
	if !s.set {
		s.values, s.set = nil, true
	}
	s.values = append(s.values, strings.Split(v, ",")...)
	return nil
}

// gatewayCmd is `detcd gateway start`: etcd's layer-4 gateway in front of
// etcd (or detcd) endpoints.
func gatewayCmd(args []string, stderr io.Writer) int {
	f, fs, err := parseGatewayFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	if len(f.subcommands) != 1 || f.subcommands[0] != "start" {
		fs.Usage()
		return 0 // as cobra, which prints the help of "gateway" for anything else
	}
	log := slog.New(slog.NewJSONHandler(stderr, etcdLogOptions(slog.LevelInfo)))
	log.Info("Running: ", "args", os.Args)
	p, err := newGateway(context.Background(), f, log, net.DefaultResolver)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	served := make(chan error, 1)
	go func() { served <- p.Serve() }()
	select {
	case sig := <-sigs:
		log.Info("received signal, shutting down", "signal", sig.String())
		p.Close()
		return 0
	case err := <-served:
		fmt.Fprintln(stderr, err)
		return 1
	}
}

// parseGatewayFlags takes flags before and after the subcommand name, as
// cobra does (`gateway --endpoints=... start`).
func parseGatewayFlags(args []string, stderr io.Writer) (*gatewayFlags, *flag.FlagSet, error) {
	f := &gatewayFlags{endpoints: stringSlice{values: []string{"127.0.0.1:2379"}}}
	fs := flag.NewFlagSet("detcd gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: detcd gateway start [flags]\n\netcd's gateway: a TCP proxy to the endpoints of an etcd cluster.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&f.listenAddr, "listen-addr", "127.0.0.1:23790", "listen address")
	fs.StringVar(&f.srv.Domain, "discovery-srv", "", "DNS domain used to bootstrap initial cluster")
	fs.StringVar(&f.srv.ServiceName, "discovery-srv-name", "", "service name to query when using DNS discovery")
	fs.BoolVar(&f.srv.Insecure, "insecure-discovery", false, "accept insecure SRV records")
	fs.StringVar(&f.srv.TrustedCAFile, "trusted-ca-file", "", "path to the client server TLS CA file for verifying the discovered endpoints when discovery-srv is provided.")
	fs.Var(&f.endpoints, "endpoints", "comma separated etcd cluster endpoints (default 127.0.0.1:2379)")
	fs.DurationVar(&f.retryDelay, "retry-delay", time.Minute, "duration of delay before retrying failed endpoints")
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return nil, fs, err
		}
		if rest = fs.Args(); len(rest) == 0 {
			return f, fs, nil
		}
		f.subcommands, rest = append(f.subcommands, rest[0]), rest[1:]
	}
}

// newGateway resolves the endpoints (SRV records first, --endpoints when
// they give none), refuses a gateway that would proxy to itself, and
// listens.
func newGateway(ctx context.Context, f *gatewayFlags, log *slog.Logger, r tcpproxy.Resolver) (*tcpproxy.Proxy, error) {
	eps, skipped, err := tcpproxy.Discover(ctx, r, f.srv)
	if err != nil {
		return nil, err
	}
	if f.srv.Domain != "" {
		log.Info("discovered cluster from SRV", "srv-server", f.srv.Domain, "endpoints", addrs(eps))
		if skipped != nil {
			log.Warn("failed to validate discovered endpoints", "srv-server", f.srv.Domain, "error", skipped.Error())
		}
	}
	if len(eps) == 0 {
		if eps, err = tcpproxy.ParseEndpoints(f.endpoints.values); err != nil {
			return nil, err
		}
	}
	if err := tcpproxy.CheckNoLoop(ctx, r, eps, f.listenAddr); err != nil {
		return nil, err
	}
	if len(eps) == 0 {
		return nil, tcpproxy.ErrNoEndpoints
	}
	l, err := net.Listen("tcp", f.listenAddr)
	if err != nil {
		return nil, err
	}
	return &tcpproxy.Proxy{Listener: l, Endpoints: eps, MonitorInterval: f.retryDelay, Logger: log}, nil
}

func addrs(eps []tcpproxy.Endpoint) []string {
	out := make([]string, len(eps))
	for i, e := range eps {
		out[i] = e.Addr
	}
	return out
}
