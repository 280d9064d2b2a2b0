package tests

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/detcd/detcd/server"
)

// binDir holds the binaries built for this test process; TestMain makes
// and removes it.
var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	// rapid writes a fail file on failure and replays it on the next run.
	// TestDiff's failures depend on the servers' history, which a fail file
	// does not hold, so replaying one is misleading; the failure's log and
	// -rapid.seed reproduce it instead. Asking for fail files explicitly
	// still works.
	if _, env := os.LookupEnv("RAPID_NOFAILFILE"); !env && !flagSet("rapid.nofailfile") {
		_ = flag.Set("rapid.nofailfile", "true")
	}
	// rapid's default of 100 cases is a few seconds here; 500 cases keep
	// each TestDiff subtest under a minute. -rapid.checks or RAPID_CHECKS
	// still decide when given.
	if _, env := os.LookupEnv("RAPID_CHECKS"); !env && !flagSet("rapid.checks") {
		_ = flag.Set("rapid.checks", "500")
	}
	dir, err := os.MkdirTemp("", "detcd-tests-bin-")
	if err != nil {
		slog.Error("temp dir for binaries", "err", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

var (
	buildOnce sync.Once
	buildErr  error
)

// binaries builds the detcd binary and etcdctl once per test process, on
// first use, so that `go test -run TestDiff` does not pay for the builds.
// Both are built in parallel: etcdctl's first link takes a few seconds.
func binaries(t testing.TB) (detcd, etcdctl string) {
	t.Helper()
	buildOnce.Do(func() {
		var wg sync.WaitGroup
		builds := []struct{ dir, pkg, out string }{
			// detcd is built in the main module, so that it has the main
			// go.mod's dependency versions, as `make build` gives it.
			{"..", "./cmd/detcd", "detcd"},
			{".", "go.etcd.io/etcd/etcdctl/v3", "etcdctl"}, // a tool of this module
		}
		errs := make([]error, len(builds))
		for i, b := range builds {
			wg.Go(func() {
				cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, b.out), b.pkg)
				cmd.Dir = b.dir
				if out, err := cmd.CombinedOutput(); err != nil {
					errs[i] = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				}
			})
		}
		wg.Wait()
		buildErr = errors.Join(errs...)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "detcd"), filepath.Join(binDir, "etcdctl")
}

// freePort returns a loopback port that nobody listens on. The port is
// released before use, so someone else could take it first. Ports come
// from below Linux's ephemeral range (32768 and up), where the kernel picks
// the local ports of outgoing connections and of ":0" listeners: this test
// makes many connections, and one of them could otherwise land on a port
// just picked. Ports are not handed out twice in one test process.
func freePort(t testing.TB) int {
	t.Helper()
	return freePortOn(t, "127.0.0.1")
}

// freePortOn is freePort on another loopback IP (the chaos suite gives
// each member its own).
func freePortOn(t testing.TB, ip string) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if portsUsed[port] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
		if err != nil {
			continue
		}
		ln.Close()
		portsUsed[port] = true
		return port
	}
	t.Fatalf("no free port on %s in 20000-31999", ip)
	return 0
}

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

func loopbackURL(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }

// tailBuffer keeps the last max bytes written to it, so that a chatty
// process cannot fill memory while its log still ends up in t.Log.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
	cut bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-b.max:]...)
		b.cut = true
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cut {
		return "...\n" + string(b.buf)
	}
	return string(b.buf)
}

// proc is a child process whose stderr is kept and shown in t.Log when
// the test fails. It is always killed at the test's end.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr *tailBuffer
	done   chan struct{}
	err    error // from Wait, set before done is closed
}

func startProc(t testing.TB, name string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, stderr: &tailBuffer{max: 64 << 10}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = p.stderr
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s (pid %d) output:\n%s", p.name, p.cmd.Process.Pid, p.stderr.String())
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// terminate sends SIGTERM and returns the exit code, or -1 if the process
// did not exit within the timeout (it is then killed).
func (p *proc) terminate(timeout time.Duration) int {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// detcdProc is a detcd binary serving one member on loopback.
type detcdProc struct {
	*proc
	dataDir    string
	clientPort int
	peerPort   int
}

func (d *detcdProc) endpoint() string { return loopbackURL(d.clientPort) }

// startDetcd starts the detcd binary on dataDir and waits until /health
// says it has a leader. clientPort and peerPort of 0 pick free ports; a
// restart passes the old ones so the member keeps its identity.
func startDetcd(t testing.TB, dataDir string, clientPort, peerPort int, extra ...string) *detcdProc {
	t.Helper()
	bin, _ := binaries(t)
	if clientPort == 0 {
		clientPort = freePort(t)
	}
	if peerPort == 0 {
		peerPort = freePort(t)
	}
	client, peer := loopbackURL(clientPort), loopbackURL(peerPort)
	args := append([]string{
		"--name", "default",
		"--data-dir", dataDir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "default=" + peer,
		"--log-level", "warn",
	}, extra...)
	d := &detcdProc{proc: startProc(t, "detcd", bin, args...), dataDir: dataDir, clientPort: clientPort, peerPort: peerPort}
	waitHealthy(t, d.proc, client)
	return d
}

// waitHealthy polls GET /health until the member reports health "true",
// giving up after 60 s or when the process exits.
func waitHealthy(t testing.TB, p *proc, endpoint string) {
	t.Helper()
	waitHealthyWith(t, p, endpoint, &http.Client{Timeout: time.Second})
}

// waitHealthyWith is waitHealthy through a given client (one with TLS
// settings for an https endpoint).
func waitHealthyWith(t testing.TB, p *proc, endpoint string, hc *http.Client) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			t.Fatalf("%s exited before becoming healthy: %v", p.name, p.err)
		}
		resp, err := hc.Get(endpoint + "/health")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(b, []byte(`"health":"true"`)) {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not healthy after 60s: %s", endpoint, last)
}

// quietLogger drops detcd's in-process logs; a failing test shows what
// it needs through t.Log.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startInProcDetcd starts an in-process detcd member with its data in a
// fresh temporary directory and returns its client address (host:port).
// opts change the configuration before the start.
func startInProcDetcd(t testing.TB, fastTicks bool, opts ...func(*server.Config)) (addr string, stop func()) {
	t.Helper()
	peer := loopbackURL(freePort(t))
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ListenClientURLs = []string{"http://127.0.0.1:0"}
	cfg.AdvertiseClientURLs = []string{"http://127.0.0.1:2379"}
	cfg.ListenPeerURLs = []string{peer}
	cfg.InitialAdvertisePeerURLs = []string{peer}
	cfg.InitialCluster = "default=" + peer
	cfg.Logger = quietLogger()
	if fastTicks {
		// A single member elects itself after an election timeout; short
		// ones make a fresh start quick. Nothing else depends on them.
		cfg.HeartbeatInterval, cfg.ElectionTimeout = 10*time.Millisecond, 100*time.Millisecond
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := server.New(cfg)
	if err != nil {
		t.Fatalf("detcd new: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("detcd start: %v", err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { s.Stop() }) }
	t.Cleanup(stop)
	addr = s.Addrs()[0]
	waitHealthy(t, nil, "http://"+addr)
	return addr, stop
}

// startEmbeddedEtcd starts a real etcd 3.7.3 member in this process, with
// its data in a fresh temporary directory, on free loopback ports, and
// waits until it serves. It returns the client address (host:port). opts
// change the configuration before the start.
func startEmbeddedEtcd(t testing.TB, fastTicks bool, opts ...func(*embed.Config)) (addr string, stop func()) {
	t.Helper()
	var e *embed.Etcd
	var client url.URL
	for try := 0; ; try++ {
		cfg := embed.NewConfig()
		cfg.Name = "default"
		cfg.Dir = t.TempDir()
		var peer url.URL
		client, peer = mustURL(t, loopbackURL(freePort(t))), mustURL(t, loopbackURL(freePort(t)))
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
		cfg.InitialCluster = "default=" + peer.String()
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		if fastTicks {
			cfg.TickMs, cfg.ElectionMs = 10, 100 // as for detcd: a quick first election
		}
		for _, o := range opts {
			o(cfg)
		}
		var err error
		e, err = embed.StartEtcd(cfg)
		if err == nil {
			break
		}
		// Someone took a port between freePort and now: pick others.
		if try == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("embedded etcd: %v", err)
		}
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		t.Fatalf("embedded etcd: %v", err)
	case <-time.After(60 * time.Second):
		e.Close()
		t.Fatal("embedded etcd not ready after 60s")
	}
	var once sync.Once
	stop = func() { once.Do(e.Close) }
	t.Cleanup(stop)
	waitHealthy(t, nil, client.String())
	return client.Host, stop
}

func mustURL(t testing.TB, s string) url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return *u
}

// ctxT is a context that ends with the test or after d.
func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
