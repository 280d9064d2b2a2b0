// Command detcd is the detcd server: an etcd-compatible key-value store
// that takes etcd's flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/detcd/detcd/server"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "snapshot" {
		return snapshotCmd(args[1:], os.Stdout, stderr)
	}
	if len(args) > 0 && args[0] == "gateway" {
		return gatewayCmd(args[1:], stderr)
	}
	cfg, logLevel, done, err := parseFlags(args, stderr)
	if done {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "detcd: %v\n", err)
		return 2
	}
	out := stderr
	if cfg.LogOutput != nil {
		out = cfg.LogOutput
	}
	log := slog.New(slog.NewJSONHandler(out, etcdLogOptions(logLevel)))
	cfg.Logger = log
	for _, f := range cfg.IgnoredFlags {
		log.Warn("flag has no effect in detcd", "flag", f)
	}
	log.Info("starting detcd", "etcd-version", server.Version, "go-version", runtime.Version(),
		"name", cfg.Name, "data-dir", cfg.DataDir, "listen-client-urls", cfg.ListenClientURLs)
	s, err := server.New(cfg)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if err := s.Start(); err != nil {
		log.Error("cannot start", "err", err)
		s.Stop()
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	select {
	case sig := <-sigs:
		log.Info("received signal, shutting down", "signal", sig.String())
		if err := s.Stop(); err != nil {
			log.Error("shutdown", "err", err)
			return 1
		}
		return 0
	case err := <-s.Fatal():
		log.Error("stopping after a fatal error", "err", err)
		s.Stop()
		return 1
	}
}

// parseFlags reads etcd's flags, then ETCD_* environment variables for
// flags not given, as etcd does. done is set when the command only printed
// something (--help, --version).
func parseFlags(args []string, stderr io.Writer) (cfg server.Config, level slog.Level, done bool, err error) {
	cfg = server.DefaultConfig()
	fs := flag.NewFlagSet("detcd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(fs, stderr) }
	var (
		listenClient, advertiseClient, listenPeer, advertisePeer string
		heartbeatMs, electionMs                                  uint
		logLevel                                                 string
		version                                                  bool
		maxRequestBytes, maxTxnOps                               uint
		cipherSuites, listenMetrics, logger, logOutputs          string
		listenClientHTTP                                         string
		maxConcurrentStreams                                     uint
		selfSignedYears                                          uint
	)
	fs.StringVar(&cfg.Name, "name", cfg.Name, "Human-readable name for this member.")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "Path to the data directory (default \"${name}.etcd\").")
	fs.StringVar(&listenClient, "listen-client-urls", strings.Join(cfg.ListenClientURLs, ","), "List of URLs to listen on for client traffic.")
	fs.StringVar(&advertiseClient, "advertise-client-urls", strings.Join(cfg.AdvertiseClientURLs, ","), "List of this member's client URLs to advertise to the public.")
	fs.StringVar(&listenPeer, "listen-peer-urls", strings.Join(cfg.ListenPeerURLs, ","), "List of URLs to listen on for peer traffic.")
	fs.StringVar(&advertisePeer, "initial-advertise-peer-urls", strings.Join(cfg.InitialAdvertisePeerURLs, ","), "List of this member's peer URLs to advertise to the rest of the cluster.")
	fs.StringVar(&cfg.InitialCluster, "initial-cluster", cfg.InitialCluster, "Initial cluster configuration for bootstrapping.")
	fs.StringVar(&cfg.InitialClusterState, "initial-cluster-state", cfg.InitialClusterState, "Initial cluster state ('new' or 'existing').")
	fs.StringVar(&cfg.InitialClusterToken, "initial-cluster-token", cfg.InitialClusterToken, "Initial cluster token for the etcd cluster during bootstrap.")
	fs.Uint64Var(&cfg.SnapshotCount, "snapshot-count", cfg.SnapshotCount, "Number of committed transactions to keep in the raft log after a snapshot.")
	fs.UintVar(&heartbeatMs, "heartbeat-interval", uint(cfg.HeartbeatInterval/time.Millisecond), "Time (in milliseconds) of a heartbeat interval.")
	fs.UintVar(&electionMs, "election-timeout", uint(cfg.ElectionTimeout/time.Millisecond), "Time (in milliseconds) for an election to timeout.")
	fs.UintVar(&maxRequestBytes, "max-request-bytes", uint(cfg.MaxRequestBytes), "Maximum client request size in bytes the server will accept.")
	fs.UintVar(&maxTxnOps, "max-txn-ops", uint(cfg.MaxTxnOps), "Maximum number of operations permitted in a transaction.")
	fs.Int64Var(&cfg.QuotaBackendBytes, "quota-backend-bytes", cfg.QuotaBackendBytes, "Raise alarms when the key space size exceeds the given quota (0 defaults to 2 GiB).")
	fs.StringVar(&cfg.AutoCompactionMode, "auto-compaction-mode", cfg.AutoCompactionMode, "Interpret 'auto-compaction-retention' one of: periodic|revision.")
	fs.StringVar(&cfg.AutoCompactionRetention, "auto-compaction-retention", "0", "Auto compaction retention length. 0 means disable auto compaction.")
	fs.DurationVar(&cfg.WatchProgressNotifyInterval, "watch-progress-notify-interval", cfg.WatchProgressNotifyInterval, "Duration of periodical watch progress notification.")
	fs.StringVar(&logLevel, "log-level", "info", "Configures log level. Only supports debug, info, warn, error, panic, or fatal.")
	fs.StringVar(&cfg.FeatureGates, "feature-gates", "", "A set of key=value pairs that describe server level feature gates, as etcd's (detcd acts on LeaseCheckpoint, default true, and SetMemberLocalAddr, InitialCorruptCheck, CompactHashCheck, default false).")
	fs.DurationVar(&cfg.CorruptCheckTime, "corrupt-check-time", cfg.CorruptCheckTime, "Duration of time between cluster corruption check passes.")
	fs.DurationVar(&cfg.CompactHashCheckTime, "compact-hash-check-time", cfg.CompactHashCheckTime, "Duration of time between leader checks followers compaction hashes.")
	fs.StringVar(&cfg.AuthToken, "auth-token", cfg.AuthToken, "Specify auth token type (detcd serves 'simple' tokens only).")
	fs.IntVar(&cfg.BcryptCost, "bcrypt-cost", cfg.BcryptCost, "Specify bcrypt algorithm cost factor for auth password hashing.")
	var authTokenTTLSec uint
	fs.UintVar(&authTokenTTLSec, "auth-token-ttl", uint(cfg.AuthTokenTTL/time.Second), "The lifetime in seconds of the auth token.")
	tlsFlags(fs, &cfg.ClientTLS, "", "client")
	tlsFlags(fs, &cfg.PeerTLS, "peer-", "peer")
	var allowedCNs string
	fs.StringVar(&cfg.ClientTLS.CRLFile, "client-crl-file", "", "Path to the client certificate revocation list file.")
	fs.StringVar(&cfg.PeerTLS.CRLFile, "peer-crl-file", "", "Path to the peer certificate revocation list file.")
	fs.StringVar(&allowedCNs, "peer-cert-allowed-cn", "", "Comma-separated list of allowed CNs for inter-peer TLS authentication.")
	fs.StringVar(&cfg.PeerTLS.AllowedHostname, "peer-cert-allowed-hostname", "", "Allowed TLS hostname for inter-peer TLS authentication.")
	fs.StringVar(&cfg.TLSMinVersion, "tls-min-version", "TLS1.2", "Minimum TLS version supported by detcd: TLS1.2 or TLS1.3.")
	fs.StringVar(&cfg.TLSMaxVersion, "tls-max-version", "", "Maximum TLS version supported by detcd: TLS1.2 or TLS1.3 (default: the newest Go supports).")
	fs.StringVar(&cipherSuites, "cipher-suites", "", "Comma-separated list of supported TLS 1.2 cipher suites between client/server and peers (empty: Go's defaults).")
	var cors string
	fs.StringVar(&cors, "cors", strings.Join(cfg.CORS, ","), "Comma-separated white list of origins for CORS, or cross-origin resource sharing, (empty or * means allow all).")
	fs.StringVar(&listenMetrics, "listen-metrics-urls", "", "List of URLs to listen on for the /metrics and /health endpoints.")
	fs.StringVar(&listenClientHTTP, "listen-client-http-urls", "", "List of URLs to listen on for http only client traffic. Enabling this flag removes http services from --listen-client-urls.")
	fs.BoolVar(&cfg.StrictReconfigCheck, "strict-reconfig-check", cfg.StrictReconfigCheck, "Reject reconfiguration requests that would cause quorum loss.")
	fs.BoolVar(&cfg.EnableGRPCGateway, "enable-grpc-gateway", cfg.EnableGRPCGateway, "Enable the JSON gateway (/v3/...) on the client URLs.")
	fs.UintVar(&maxConcurrentStreams, "max-concurrent-streams", uint(cfg.MaxConcurrentStreams), "Maximum concurrent streams that each client can open at a time.")
	fs.DurationVar(&cfg.GRPCKeepAliveMinTime, "grpc-keepalive-min-time", cfg.GRPCKeepAliveMinTime, "Minimum interval duration that a client should wait before pinging server.")
	fs.DurationVar(&cfg.GRPCKeepAliveInterval, "grpc-keepalive-interval", cfg.GRPCKeepAliveInterval, "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).")
	fs.DurationVar(&cfg.GRPCKeepAliveTimeout, "grpc-keepalive-timeout", cfg.GRPCKeepAliveTimeout, "Additional duration of wait before closing a non-responsive connection (0 to disable).")
	fs.Uint64Var(&cfg.SnapshotCatchUpEntries, "snapshot-catchup-entries", cfg.SnapshotCatchUpEntries, "Number of entries for a slow follower to catch up after compacting the raft storage entries.")
	fs.UintVar(&selfSignedYears, "self-signed-cert-validity", cfg.SelfSignedCertValidityYears, "The validity period of the client and peer certificates that are automatically generated when --auto-tls or --peer-auto-tls is given, in years.")
	fs.StringVar(&logger, "logger", "zap", "Currently only supports 'zap' for structured logging (detcd logs JSON lines with log/slog).")
	fs.StringVar(&logOutputs, "log-outputs", "default", "Where to write logs: 'default' or 'stderr', 'stdout', or a file path.")
	discoveryEndpoints := discoveryFlags(fs, &cfg.Discovery)
	fs.StringVar(&cfg.DiscoverySRV, "discovery-srv", "", "DNS domain used to bootstrap initial cluster.")
	fs.StringVar(&cfg.DiscoverySRVName, "discovery-srv-name", "", "Service name to query when using DNS discovery.")
	ignored := ignoredFlags(fs)
	fs.BoolVar(&cfg.EnablePprof, "enable-pprof", false, "Enable runtime profiling data via HTTP server. Address is at client URL + \"/debug/pprof/\"")
	fs.BoolVar(&cfg.UnsafeWALRepair, "unsafe-wal-repair", false, "detcd only: if the last log segment holds a corrupt record, cut it and everything after it (logged at WARN with the file, offset and bytes dropped) instead of refusing to start. Writes this member acknowledged may be lost: prefer removing and re-adding the member.")
	fs.BoolVar(&version, "version", false, "Print the version and exit.")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, 0, true, nil
		}
		return cfg, 0, false, err
	}
	if fs.NArg() > 0 {
		return cfg, 0, false, fmt.Errorf("'%s' is not a valid flag", fs.Arg(0))
	}
	if err := fromEnv(fs); err != nil {
		return cfg, 0, false, err
	}
	if version {
		printVersion(os.Stdout) // etcd prints it on stdout
		return cfg, 0, true, nil
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["listen-client-urls"] && !set["advertise-client-urls"] {
		return cfg, 0, false, errors.New("--advertise-client-urls is required when --listen-client-urls is set explicitly")
	}
	cfg.ListenClientURLs = splitURLs(listenClient)
	cfg.AdvertiseClientURLs = splitURLs(advertiseClient)
	cfg.ListenPeerURLs = splitURLs(listenPeer)
	cfg.InitialAdvertisePeerURLs = splitURLs(advertisePeer)
	if *discoveryEndpoints != "" {
		// Not splitURLs: etcd refuses empty endpoints (Validate).
		cfg.Discovery.Endpoints = strings.Split(*discoveryEndpoints, ",")
	}
	if (len(cfg.Discovery.Endpoints) > 0 || cfg.DiscoverySRV != "") && set["initial-cluster"] {
		return cfg, 0, false, server.ErrConflictBootstrap
	}
	defaultInitialCluster(&cfg, set)
	cfg.ListenMetricsURLs = splitURLs(listenMetrics)
	cfg.ListenClientHTTPURLs = splitURLs(listenClientHTTP)
	cfg.CORS = splitURLs(cors)
	if len(cfg.CORS) == 0 {
		cfg.CORS = []string{"*"} // etcd: empty allows all
	}
	if allowedCNs != "" {
		cfg.PeerTLS.AllowedCNs = strings.Split(allowedCNs, ",")
	}
	cfg.MaxConcurrentStreams = uint32(min(maxConcurrentStreams, math.MaxUint32))
	cfg.SelfSignedCertValidityYears = selfSignedYears
	if logger != "zap" {
		return cfg, 0, false, fmt.Errorf("invalid --logger %q: only 'zap' is supported", logger)
	}
	if cfg.LogOutput, err = openLogOutput(logOutputs); err != nil {
		return cfg, 0, false, err
	}
	cfg.IgnoredFlags = ignored.set(fs)
	if cipherSuites != "" {
		cfg.CipherSuites = strings.Split(cipherSuites, ",")
	}
	cfg.AuthTokenTTL = time.Duration(authTokenTTLSec) * time.Second
	cfg.HeartbeatInterval = time.Duration(heartbeatMs) * time.Millisecond
	cfg.ElectionTimeout = time.Duration(electionMs) * time.Millisecond
	cfg.MaxRequestBytes, cfg.MaxTxnOps = int(maxRequestBytes), int(maxTxnOps)
	if cfg.QuotaBackendBytes == 0 {
		cfg.QuotaBackendBytes = server.DefaultConfig().QuotaBackendBytes
	}
	if level, err = parseLevel(logLevel); err != nil {
		return cfg, 0, false, err
	}
	return cfg, level, false, nil
}

// tlsFlags defines etcd's TLS flags of one side: --cert-file or
// --peer-cert-file, and so on.
func tlsFlags(fs *flag.FlagSet, t *server.TLSInfo, prefix, side string) {
	fs.StringVar(&t.CertFile, prefix+"cert-file", "", "Path to the "+side+" server TLS cert file.")
	fs.StringVar(&t.KeyFile, prefix+"key-file", "", "Path to the "+side+" server TLS key file.")
	fs.StringVar(&t.TrustedCAFile, prefix+"trusted-ca-file", "", "Path to the "+side+" TLS trusted CA file. Setting it also requires a "+side+" certificate signed by it, whatever --"+prefix+"client-cert-auth says (as etcd).")
	fs.BoolVar(&t.ClientCertAuth, prefix+"client-cert-auth", false, "Refuse "+side+" connections without a certificate signed by --"+prefix+"trusted-ca-file.")
	fs.BoolVar(&t.AutoTLS, prefix+"auto-tls", false, strings.ToUpper(side[:1])+side[1:]+" TLS using a generated self-signed certificate (kept in the data directory's fixtures/"+side+").")
}

// discoveryFlags defines etcd's v3 discovery flags; it returns where
// --discovery-endpoints goes.
func discoveryFlags(fs *flag.FlagSet, d *server.DiscoveryConfig) *string {
	endpoints := fs.String("discovery-endpoints", "", "V3 discovery: List of gRPC endpoints of the discovery service.")
	fs.StringVar(&d.Token, "discovery-token", "", "V3 discovery: discovery token for the etcd cluster to be bootstrapped.")
	fs.DurationVar(&d.DialTimeout, "discovery-dial-timeout", d.DialTimeout, "V3 discovery: dial timeout for client connections.")
	fs.DurationVar(&d.RequestTimeout, "discovery-request-timeout", d.RequestTimeout, "V3 discovery: timeout for discovery requests (excluding dial timeout).")
	fs.DurationVar(&d.KeepAliveTime, "discovery-keepalive-time", d.KeepAliveTime, "V3 discovery: keepalive time for client connections.")
	fs.DurationVar(&d.KeepAliveTimeout, "discovery-keepalive-timeout", d.KeepAliveTimeout, "V3 discovery: keepalive timeout for client connections.")
	fs.BoolVar(&d.InsecureTransport, "discovery-insecure-transport", d.InsecureTransport, "V3 discovery: disable transport security for client connections.")
	fs.BoolVar(&d.InsecureSkipVerify, "discovery-insecure-skip-tls-verify", false, "V3 discovery: skip server certificate verification (CAUTION: this option should be enabled only for testing purposes).")
	fs.StringVar(&d.CertFile, "discovery-cert", "", "V3 discovery: identify secure client using this TLS certificate file.")
	fs.StringVar(&d.KeyFile, "discovery-key", "", "V3 discovery: identify secure client using this TLS key file.")
	fs.StringVar(&d.CAFile, "discovery-cacert", "", "V3 discovery: verify certificates of TLS-enabled secure servers using this CA bundle.")
	fs.StringVar(&d.User, "discovery-user", "", "V3 discovery: username[:password] for authentication (prompt if password is not supplied).")
	fs.StringVar(&d.Password, "discovery-password", "", "V3 discovery: password for authentication (if this option is used, --user option shouldn't include password).")
	return endpoints
}

// defaultInitialCluster makes this member alone the initial cluster when
// --initial-cluster is not given but --name or its peer URLs are, as etcd
// does.
func defaultInitialCluster(cfg *server.Config, set map[string]bool) {
	if !set["initial-cluster"] && (set["name"] || set["initial-advertise-peer-urls"]) {
		cfg.InitialCluster = cfg.Name + "=" + strings.Join(cfg.InitialAdvertisePeerURLs, ","+cfg.Name+"=")
	}
}

// ignoredFlagSet are etcd flags detcd takes so that etcd's command lines
// work, but that change nothing in detcd; the values etcd uses are
// detcd's behaviour, and other values are logged at start.
type ignoredFlagSet map[string]string

func ignoredFlags(fs *flag.FlagSet) ignoredFlagSet {
	defs := ignoredFlagSet{
		"max-snapshots":                 "5",
		"max-wals":                      "5",
		"pre-vote":                      "true",
		"initial-election-tick-advance": "true",
	}
	for _, name := range slices.Sorted(maps.Keys(defs)) {
		fs.String(name, defs[name], "Taken for etcd compatibility; detcd behaves as etcd does with "+defs[name]+" and logs other values.")
	}
	return defs
}

// set returns the ignored flags given with values other than etcd's
// defaults.
func (d ignoredFlagSet) set(fs *flag.FlagSet) []string {
	var out []string
	fs.Visit(func(f *flag.Flag) {
		if def, ok := d[f.Name]; ok && f.Value.String() != def {
			out = append(out, "--"+f.Name+"="+f.Value.String())
		}
	})
	return out
}

// openLogOutput is --log-outputs: stderr, stdout or a file (appended to).
func openLogOutput(s string) (io.Writer, error) {
	switch s {
	case "", "default", "stderr":
		return nil, nil
	case "stdout":
		return os.Stdout, nil
	}
	f, err := os.OpenFile(s, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--log-outputs: %w", err)
	}
	return f, nil
}

// fromEnv sets flags not given on the command line from ETCD_* variables:
// ETCD_DATA_DIR for --data-dir.
func fromEnv(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		key := "ETCD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(key); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("invalid value %q for %s: %v", v, key, e)
			}
		}
	})
	return err
}

func splitURLs(s string) []string {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

func parseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error", "panic", "fatal":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("invalid --log-level %q: want debug, info, warn, error, panic or fatal", s)
}

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, `Usage: detcd [flags]

detcd is a key-value server that speaks etcd's v3 API: etcdctl and etcd's
Go client work against it unchanged. Run without flags it starts a
single-member cluster on localhost:2379 with its data in ./default.etcd.
Every flag can also be given as an ETCD_* environment variable
(ETCD_DATA_DIR for --data-dir).

'detcd snapshot restore FILE' makes a data directory from a snapshot that
'etcdctl snapshot save' took from detcd or etcd (etcd's database file),
'detcd snapshot status FILE' describes one (see 'detcd snapshot restore
--help').

'detcd gateway start --endpoints=HOST:PORT,...' is etcd's gateway, a TCP
proxy to the members of a cluster (see 'detcd gateway --help').

Flags:
`)
	fs.PrintDefaults()
}
