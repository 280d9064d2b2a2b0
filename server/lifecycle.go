package server

import (
	"log/slog"
	"sync"

	"github.com/detcd/detcd/core"
)

// lifecycle is the member's life from New to Stop: whether it restarted
// from data it had, when it is ready to serve clients, the first failure
// (the one Fatal reports), the signals that it is stopping, and the
// start-up lines it logs on the way.
type lifecycle struct {
	log *slog.Logger
	// restarted is set when the member started from data it had: only
	// such a member runs the initial corruption check, as in etcd.
	restarted bool
	// ready is closed once this start's attributes are applied: as etcd
	// does, the client listeners serve nothing before, so a client never
	// sees a member the cluster lists as unstarted.
	ready     chan struct{}
	readyDone bool // on the loop: ready is closed
	lines     startLines
	// draining is closed when Stop begins; stopping once requests in
	// flight are done and the loop should end.
	draining, stopping chan struct{}
	stopOnce           sync.Once
	fatal              chan error

	errMu sync.Mutex
	err   error
}

func newLifecycle(log *slog.Logger, restarted bool, lines startLines) *lifecycle {
	return &lifecycle{log: log, restarted: restarted, lines: lines,
		ready: make(chan struct{}), draining: make(chan struct{}), stopping: make(chan struct{}), fatal: make(chan error, 1)}
}

// afterTurn notes, on the loop, what a turn changed of the member's
// life: ready once its attributes are applied, and the cluster version's
// lines.
func (l *lifecycle) afterTurn(n *core.Node) {
	if !l.readyDone && n.Published() {
		l.readyDone = true
		l.lines.published()
		close(l.ready)
	}
	l.lines.clusterVersion(n.ClusterVersion())
}

// die records a failure that stops the member; Fatal tells the owner,
// who stops the server.
func (l *lifecycle) die(err error) {
	if l.setErr(err) {
		l.log.Error("member cannot go on", "err", err)
		select {
		case l.fatal <- err:
		default:
		}
	}
}

// setErr keeps the first error and reports whether err was it.
func (l *lifecycle) setErr(err error) bool {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	if l.err != nil {
		return false
	}
	l.err = err
	return true
}

// firstErr is the first failure, nil if none.
func (l *lifecycle) firstErr() error {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return l.err
}
