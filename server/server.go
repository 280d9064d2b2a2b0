package server

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/disk"
	"github.com/detcd/detcd/diskfs"
	"github.com/detcd/detcd/driver"
)

// Version is the etcd version detcd answers as on /version and in Status.
const Version = "3.7.3"

// ClusterVersion is the cluster version detcd reports.
const ClusterVersion = "3.7.0"

// Server is a running detcd member: the one driver around its node, and
// the parts that connect it to the world, each owning its own state.
type Server struct {
	cfg  Config
	log  *slog.Logger
	node *core.Node
	disk *disk.Disk
	// loop is the real runtime the one driver, drv, runs on (loop.go).
	loop *driver.Loop
	drv  *driver.Driver
	// Frontend is the member's grpcsvc.Backend, over the driver.
	*driver.Frontend

	// inst is what the member shows of itself: its published status,
	// metrics and health (instruments.go); status and metrics are its.
	inst    *Instruments
	status  *memberStatus
	metrics *metrics
	life    *lifecycle     // New to Stop, ready, fatal (lifecycle.go)
	peers   *peerTransport // driver.Transport (transport.go)
	lis     *listeners     // client and metrics listeners (listeners.go)
	api     *clientGRPC    // etcd's gRPC API; nil before Start (grpc.go)
	web     *httpEndpoints // etcd's HTTP endpoints (http.go)
	corrupt *corruptChecks // (corrupt.go)
	mem     *memReleaser   // hands freed memory back after a defragmentation (memlimit.go)
}

// opened is a member's data directory, opened, and what New read for it.
type opened struct {
	node      *core.Node
	disk      *disk.Disk
	restarted bool
	tls       tlsConfigs
	tokens    driver.Tokens // nil with simple tokens
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
	o, err := open(&cfg, log)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, node: o.node, disk: o.disk,
		life: newLifecycle(log, o.restarted, newStartLines(log, &cfg, o.node.ID(), o.node.ClusterID())),
		lis:  &listeners{log: log, tls: o.tls.client},
	}
	s.inst = NewInstruments(&s.cfg, o.node.ID(), func() []core.Member { return s.peers.memberList() })
	s.status, s.metrics = s.inst.status, s.inst.metrics
	s.metrics.registerProcess()
	s.peers = newPeerTransport(log, o.node.ID(), o.node.ClusterID(), newPeerDialer(&cfg, o.tls), o.tls.peerServer, s.metrics.peer, s.inst.version)
	if err := s.newDriver(o); err != nil {
		return nil, err
	}
	s.corrupt = newCorruptChecks(s)
	s.web = newHTTPEndpoints(&s.cfg, s.metrics.reg, s.inst.healthChecks(s.Frontend), s.lis, s.inst.version)
	s.inst.Publish(s.node)
	return s, nil
}

// open reads the TLS and token settings, joins the cluster if the member
// is new to an existing one, and opens the data directory.
func open(cfg *Config, log *slog.Logger) (opened, error) {
	var seed [8]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return opened{}, fmt.Errorf("proposal epoch: %w", err)
	}
	ccfg, err := cfg.CoreConfig(binary.BigEndian.Uint64(seed[:]), log.With("component", "core"))
	if err != nil {
		return opened{}, err
	}
	var o opened
	if o.tls, err = newTLSConfigs(cfg, log); err != nil {
		return opened{}, err
	}
	if o.tokens, err = cfg.TokenProvider(os.ReadFile, time.Now); err != nil {
		return opened{}, err
	}
	fsys := diskfs.New(cfg.DataDir)
	if o.restarted, err = wal.Exists(fsys, "member/wal"); err != nil {
		return opened{}, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	if err := joinIfNew(ctxFor(*cfg), fsys, cfg, &ccfg, o.tls, log); err != nil {
		return opened{}, err
	}
	start := time.Now()
	// A restart loads gigabytes on a large store (the checkpoint, the
	// log after it, the key space it rebuilds): the heap keeps the
	// running server's headroom meanwhile, not GOGC=100's, which let an
	// 8 GiB store's restart reach twice its size. Start runs the policy
	// from then on.
	opening := make(chan struct{})
	go runMemLimit(opening)
	o.node, o.disk, err = disk.Open(fsys, ".", ccfg, disk.Options{Logger: log, UnsafeWALRepair: cfg.UnsafeWALRepair, KeepReceived: true})
	close(opening)
	if err != nil {
		return opened{}, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	log.Info("opened data directory", "dir", cfg.DataDir, "took", time.Since(start).Round(time.Millisecond).String())
	removeSnapshotTemps(cfg.DataDir, log)
	return o, nil
}

// Start listens on the peer and client URLs and starts serving.
func (s *Server) Start() error {
	if err := s.listen(); err != nil {
		s.closeListeners()
		return err
	}
	s.mem = newMemReleaser(s.log)
	s.api = newClientGRPC(&s.cfg, s.Frontend, s.status, s.metrics, s.mem)
	if err := s.web.startClient(s.api.srv); err != nil {
		s.closeListeners()
		return err
	}
	go s.loop.Run(s.drv)
	go runMemLimit(s.life.stopping)
	go s.mem.run(s.life.stopping)
	go s.api.monitorLeader(s.cfg.ElectionTimeout, s.life.stopping)
	if gates, _ := s.cfg.gates(); gates["InitialCorruptCheck"] && s.life.restarted {
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

// listen opens the peer, metrics and client listeners; the first two
// serve at once.
func (s *Server) listen() error {
	if err := s.peers.listen(s.cfg.ListenPeerURLs); err != nil {
		return err
	}
	if err := s.web.serveMetrics(s.cfg.ListenMetricsURLs); err != nil {
		return err
	}
	return s.lis.openClients(s.cfg.ListenClientURLs, s.cfg.ListenClientHTTPURLs)
}

// serveClientsWhenReady serves the client listeners once the member has
// published its attributes. Until then connections wait in the listen
// backlog, as with etcd.
func (s *Server) serveClientsWhenReady() {
	select {
	case <-s.life.ready:
	case <-s.life.draining:
		return
	}
	s.lis.serveClients(clientServers{grpc: s.api.srv, http: s.web.client})
	if s.web.gateway != nil {
		s.web.gateway.serve(s.api.srv)
	}
	s.api.serving()
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
func (s *Server) Fatal() <-chan error { return s.life.fatal }

// Stop shuts the server down: it stops taking requests, lets those in
// flight finish for a while, makes the log durable and closes it.
func (s *Server) Stop() error {
	s.life.stopOnce.Do(func() {
		s.handOff()
		close(s.life.draining)
		s.Frontend.Drain()
		if s.api != nil {
			s.api.stop()
		}
		s.web.stop()
		s.peers.stopServing()
		s.closeListeners()
		close(s.life.stopping)
		if s.api != nil {
			s.loop.Stop()
			s.peers.stopSenders()
		}
		if err := s.disk.Close(); err != nil {
			s.life.setErr(err)
		}
		s.log.Info("stopped")
	})
	return s.life.firstErr()
}

// newMemberID is etcd's id for a member added at runtime, from its peer
// URLs, the cluster token and the time.
func (s *Server) newMemberID(peerURLs []string) uint64 {
	return core.MemberID(peerURLs, s.cfg.InitialClusterToken+fmt.Sprint(time.Now().Unix()))
}
