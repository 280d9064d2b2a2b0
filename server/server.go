package server

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/disk"
	"github.com/detcd/detcd/diskfs"
	"github.com/detcd/detcd/driver"
	"github.com/detcd/detcd/grpcsvc"
)

// Version is the etcd version detcd answers as on /version and in Status.
const Version = "3.7.3"

// ClusterVersion is the cluster version detcd reports.
const ClusterVersion = "3.7.0"

// Server is a running detcd member.
type Server struct {
	cfg  Config
	log  *slog.Logger
	node *core.Node
	disk *disk.Disk

	// loop is the real runtime the one driver, drv, runs on.
	loop  *driver.Loop
	drv   *driver.Driver
	peers *peerTransport
	tls   tlsConfigs
	jwt   *jwtTokens // nil with simple tokens
	fatal chan error
	// restarted is set when the member started from data it had: only
	// such a member runs the initial corruption check, as in etcd.
	restarted bool

	// Frontend is the member's grpcsvc.Backend, over the driver.
	*driver.Frontend
	status *memberStatus
	guard  *grpcsvc.Guard

	metrics *metrics
	corrupt *corruptChecks

	grpc *grpc.Server
	hs   *health.Server
	// closeLocal ends the in-process client of Lock and Election.
	closeLocal func()
	lis        *listeners
	web        *httpEndpoints

	stopOnce sync.Once
	// draining is closed when Stop begins; stopping once requests in
	// flight are done and the loop should end.
	draining chan struct{}
	stopping chan struct{}
	// ready is closed once this start's attributes are applied: as etcd
	// does, the client listeners serve nothing before, so a client never
	// sees a member the cluster lists as unstarted.
	ready     chan struct{}
	readyDone bool // on the loop: ready is closed
	// loggedClusterVersion is the cluster version last logged; the loop's.
	loggedClusterVersion string

	errMu sync.Mutex
	err   error
}

// New opens the member's data directory and prepares it to serve.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	var seed [8]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("proposal epoch: %w", err)
	}
	ccfg, err := cfg.coreConfig(binary.BigEndian.Uint64(seed[:]), log.With("component", "core"))
	if err != nil {
		return nil, err
	}
	tlsc, err := newTLSConfigs(&cfg, log)
	if err != nil {
		return nil, err
	}
	jwtTok, err := parseJWTOptions(cfg.AuthToken)
	if err != nil {
		return nil, err
	}
	fsys := diskfs.New(cfg.DataDir)
	restarted, err := wal.Exists(fsys, "member/wal")
	if err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	if err := joinIfNew(ctxFor(cfg), fsys, &cfg, &ccfg, tlsc, log); err != nil {
		return nil, err
	}
	start := time.Now()
	node, d, err := disk.Open(fsys, ".", ccfg, disk.Options{Logger: log, UnsafeWALRepair: cfg.UnsafeWALRepair})
	if err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	log.Info("opened data directory", "dir", cfg.DataDir, "took", time.Since(start).Round(time.Millisecond).String())
	removeSnapshotTemps(cfg.DataDir, log)
	s := &Server{
		cfg: cfg, log: log, node: node, disk: d, tls: tlsc, jwt: jwtTok,
		fatal:     make(chan error, 1),
		restarted: restarted,
		draining:  make(chan struct{}),
		stopping:  make(chan struct{}),
		ready:     make(chan struct{}),
	}
	s.status = &memberStatus{id: node.ID()}
	wal, peer := newWALMetrics(), newPeerMetrics()
	s.peers = newPeerTransport(log, node.ID(), node.ClusterID(), newPeerDialer(&cfg, tlsc), peer)
	if err := s.newDriver(wal); err != nil {
		return nil, err
	}
	s.metrics = newMetrics(metricSources{cfg: &s.cfg, status: s.status, revs: s.Frontend, members: s.peers.memberList, peer: peer, wal: wal})
	s.corrupt = newCorruptChecks(s)
	s.lis = &listeners{log: log, tls: tlsc.client}
	health := &healthChecks{backend: s.Frontend, status: s.status, timeout: cfg.requestTimeout(), metrics: s.metrics.health}
	s.web = newHTTPEndpoints(&s.cfg, s.metrics.reg, health, s.lis)
	s.publish()
	return s, nil
}

// Start listens on the peer and client URLs and starts serving.
func (s *Server) Start() error {
	if err := s.peers.listen(s.cfg.ListenPeerURLs, s.tls.peerServer); err != nil {
		s.closeListeners()
		return err
	}
	if err := s.web.serveMetrics(s.cfg.ListenMetricsURLs); err != nil {
		s.closeListeners()
		return err
	}
	if err := s.lis.openClients(s.cfg.ListenClientURLs, s.cfg.ListenClientHTTPURLs); err != nil {
		s.closeListeners()
		return err
	}
	s.guard = grpcsvc.NewGuard(s.status)
	opts := append(grpcsvc.ServerOptions(grpcsvc.Options{
		MaxRequestBytes:      s.cfg.MaxRequestBytes,
		MaxConcurrentStreams: s.cfg.MaxConcurrentStreams,
		KeepaliveMinTime:     s.cfg.GRPCKeepAliveMinTime,
		KeepaliveInterval:    s.cfg.GRPCKeepAliveInterval,
		KeepaliveTimeout:     s.cfg.GRPCKeepAliveTimeout,
	}), grpc.ChainUnaryInterceptor(s.metrics.grpc.UnaryServerInterceptor(), s.metrics.unary),
		grpc.ChainStreamInterceptor(s.metrics.grpc.StreamServerInterceptor(), s.metrics.stream))
	opts = append(opts, s.guard.ServerOptions()...)
	s.grpc = grpc.NewServer(opts...)
	s.hs, s.closeLocal = grpcsvc.Register(s.grpc, s)
	s.metrics.grpc.InitializeMetrics(s.grpc)
	if err := s.web.startClient(s.grpc); err != nil {
		s.closeListeners()
		return err
	}
	go s.loop.Run(s.drv)
	go s.runMemLimit()
	go s.monitorLeader()
	if gates, _ := s.cfg.gates(); gates["InitialCorruptCheck"] && s.restarted {
		if err := s.corrupt.initial(); err != nil {
			s.log.Error("initial corruption check failed", "err", err)
			s.Stop()
			return err
		}
	}
	s.corrupt.start()
	s.lis.logClients()
	go s.serveClientsWhenReady()
	return nil
}

// serveClientsWhenReady serves the client listeners once the member has
// published its attributes. Until then connections wait in the listen
// backlog, as with etcd.
func (s *Server) serveClientsWhenReady() {
	select {
	case <-s.ready:
	case <-s.draining:
		return
	}
	s.lis.serveClients(clientServers{grpc: s.grpc, http: s.web.client})
	if s.web.gateway != nil {
		s.web.gateway.serve(s.grpc)
	}
	s.hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
}

func (s *Server) closeListeners() {
	s.lis.close()
	s.peers.closeListeners()
}

// PeerAddrs are the addresses the server takes peer traffic on.
func (s *Server) PeerAddrs() []string { return s.peers.addrs() }

// Addrs are the addresses the server listens on.
func (s *Server) Addrs() []string { return s.lis.clientAddrs() }

// Fatal delivers a failure after which the member cannot go on (a failed
// fsync, say); the owner should Stop the server and exit non-zero.
func (s *Server) Fatal() <-chan error { return s.fatal }

// Stop shuts the server down: it stops taking requests, lets those in
// flight finish for a while, makes the log durable and closes it.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		close(s.draining)
		s.Frontend.Drain()
		if s.hs != nil {
			s.hs.Shutdown()
		}
		if s.grpc != nil {
			done := make(chan struct{})
			go func() { s.grpc.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				s.grpc.Stop()
			}
		}
		s.web.stop()
		if s.closeLocal != nil {
			s.closeLocal()
		}
		s.peers.stopServing()
		s.closeListeners()
		close(s.stopping)
		if s.grpc != nil {
			s.loop.Stop()
			s.peers.stopSenders()
		}
		if err := s.disk.Close(); err != nil {
			s.setErr(err)
		}
		s.log.Info("stopped")
	})
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// monitorLeader lets the guard end the streams that require a leader once
// the member has been without one for a while (see grpcsvc.Guard).
func (s *Server) monitorLeader() {
	t := time.NewTicker(s.cfg.ElectionTimeout)
	defer t.Stop()
	for {
		select {
		case <-s.stopping:
			return
		case <-t.C:
			s.guard.CheckLeader()
		}
	}
}

// newMemberID is etcd's id for a member added at runtime, from its peer
// URLs, the cluster token and the time.
func (s *Server) newMemberID(peerURLs []string) uint64 {
	return core.MemberID(peerURLs, s.cfg.InitialClusterToken+fmt.Sprint(time.Now().Unix()))
}

// die records a failure that stops the member; Fatal tells the owner,
// who stops the server.
func (s *Server) die(err error) {
	if s.setErr(err) {
		s.log.Error("member cannot go on", "err", err)
		select {
		case s.fatal <- err:
		default:
		}
	}
}

// setErr keeps the first error and reports whether err was it.
func (s *Server) setErr(err error) bool {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.err != nil {
		return false
	}
	s.err = err
	return true
}
