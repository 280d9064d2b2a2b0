package driver

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/detcd/detcd/core"
)

// Limits on the real runtime's queues.
const (
	// InboxMax bounds the events (requests, peer messages) waiting for
	// the loop; a full inbox makes handlers wait (and their deadlines
	// apply), never drops a request.
	InboxMax = 8192
	// TurnEventsMax is how many waiting events one turn of the loop
	// takes before it carries out the node's Ready, so that many
	// proposals share one log write and fsync.
	TurnEventsMax = 4096
	// PeerInboxMax bounds the messages from peers waiting for the loop:
	// they have a queue of their own so that a flood of client requests
	// never crowds out heartbeats.
	PeerInboxMax = 4096
	// doneMax bounds completed background work waiting for the loop.
	doneMax = 64
	// BackgroundInterval is the time from one step of the node's
	// background work (physical compaction, defragmentation) to the next,
	// as etcd sleeps between its compaction batches: each step is a turn
	// of its own, taken on this schedule whatever requests come, so the
	// work neither waits for a quiet moment that a steady load never
	// leaves nor adds itself to the turns that serve requests.
	BackgroundInterval = 2 * time.Millisecond
	// WALInlineMax is the longest the last log write (write and fsync)
	// may have taken for the loop to carry out the next one itself, when
	// it is idle, rather than hand it to a goroutine: an idle loop that
	// writes its one request's entry itself spares that request two
	// hand-offs between goroutines (to the writer and back), but a
	// slow disk must not hold the loop, which ticks, sends heartbeats and
	// serves reads meanwhile.
	WALInlineMax = time.Millisecond
	// DefaultStopCheckpointMax bounds how long a stop waits for the
	// checkpoint it writes (Driver.StopCheckpoint) to be durable, well
	// within the time service managers give a stop (systemd: 90 s,
	// Kubernetes: 30 s) on top of the log's final sync.
	DefaultStopCheckpointMax = 20 * time.Second
)

// LoopConfig configures the real runtime.
type LoopConfig struct {
	// Tick is the wall-clock length of one of the node's ticks.
	Tick time.Duration
	// Fatal is told of a failure after which the member cannot go on;
	// its owner should stop it.
	Fatal func(error)
	// AfterTurn, if set, runs on the loop after every turn, once the
	// node's Ready was carried out: the server publishes its state there.
	AfterTurn func()
	// StopCheckpointMax bounds the wait for a stop's checkpoint; zero is
	// DefaultStopCheckpointMax.
	StopCheckpointMax time.Duration
	// BeforeStep, if set, runs off the loop before each background step,
	// with its kind: a test holds a step there, as a slow disk would.
	BeforeStep func(StepKind)
}

// Validate reports a LoopConfig that cannot run.
func (c *LoopConfig) Validate() error {
	if c.Tick <= 0 {
		return errors.New("driver: tick interval must be positive")
	}
	if c.Fatal == nil {
		return errors.New("driver: no fatal handler")
	}
	return nil
}

// Loop is the real runtime: one goroutine runs the Driver, ticks come
// from a wall-clock ticker (which drops ticks while the loop is busy, as
// time.Ticker does), background work runs on goroutines of its own,
// except a log write that an idle loop carries out itself (Background).
type Loop struct {
	cfg      LoopConfig
	d        *Driver
	inbox    chan func()
	peers    chan func()
	done     chan func()
	stopOnce sync.Once
	stopping chan struct{}
	stopped  chan struct{}

	// idleTurn is set, on the loop, while the turn it is in has taken
	// one event and nothing else: a log write handed over then waits in
	// deferred for the turn's end, where the loop carries it out itself
	// if it is still idle (finishTurn).
	idleTurn bool
	deferred *Job
	// walTook is how long the last log write took (nanoseconds), inline
	// or on a goroutine: WALInlineMax.
	walTook atomic.Int64
}

// NewLoop returns a real runtime; Run starts it once its Driver exists.
func NewLoop(cfg LoopConfig) (*Loop, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Loop{
		cfg:      cfg,
		inbox:    make(chan func(), InboxMax),
		peers:    make(chan func(), PeerInboxMax),
		done:     make(chan func(), doneMax),
		stopping: make(chan struct{}),
		stopped:  make(chan struct{}),
	}, nil
}

// Now implements Env.
func (l *Loop) Now() time.Time { return time.Now() }

// Sleep implements Clock.
func (l *Loop) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Fail implements Env.
func (l *Loop) Fail(err error) { l.cfg.Fatal(err) }

// Background implements Env: the job runs on a goroutine of its own, and
// its completion waits for the loop ahead of new requests; a job with a
// step that holds the loop runs on it, now. A log write handed over in a
// turn that took one event waits for the turn's end, where the loop
// writes it itself if it is still idle (finishTurn): the answer to a lone
// request then costs no hand-off to a writer goroutine and back.
func (l *Loop) Background(j Job) {
	if hook := l.cfg.BeforeStep; hook != nil {
		j.Steps = slices.Clone(j.Steps)
		for i, s := range j.Steps {
			j.Steps[i].Run = func() error {
				hook(s.Kind)
				return s.Run()
			}
		}
	}
	if j.holdsLoop() {
		j.Done(j.RunSteps())
		return
	}
	if l.idleTurn && l.deferred == nil && j.logWrite() && l.cfg.BeforeStep == nil {
		l.deferred = &j
		return
	}
	l.spawn(j)
}

// spawn runs j on a goroutine of its own; its completion waits for the
// loop ahead of new requests.
func (l *Loop) spawn(j Job) {
	log := j.logWrite()
	go func() {
		start := time.Now()
		err := j.RunSteps()
		if log {
			l.walTook.Store(int64(time.Since(start)))
		}
		select {
		case l.done <- func() { j.Done(err) }:
		case <-l.stopped:
		}
	}()
}

// Post runs fn on the loop. It waits while the inbox is full, until ctx
// ends or the loop stops.
func (l *Loop) Post(ctx context.Context, fn func()) error {
	select {
	case l.inbox <- fn:
		return nil
	default:
	}
	select {
	case l.inbox <- fn:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-l.stopping:
		return core.ErrStopped
	}
}

// PostPeer runs fn, a peer's message, on the loop if the peers' inbox
// has room, and reports whether it did: a lagging loop drops peers'
// messages as a lossy network would (raft retries).
func (l *Loop) PostPeer(fn func()) bool {
	select {
	case l.peers <- fn:
		return true
	default:
		return false
	}
}

// Go implements Runtime: fn runs on a goroutine of its own.
func (l *Loop) Go(fn func()) { go fn() }

// NewSignal implements Runtime.
func (l *Loop) NewSignal() Signal { return chanSignal{ch: make(chan struct{}, 1), stopped: l.stopped} }

// chanSignal is the real runtime's Signal.
type chanSignal struct {
	ch      chan struct{}
	stopped <-chan struct{}
}

func (s chanSignal) Fire() {
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

func (s chanSignal) Wait(ctx context.Context) error {
	select {
	case <-s.ch:
		return nil
	default:
	}
	select {
	case <-s.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped:
		return core.ErrStopped
	}
}

// Run runs the loop on d until Stop; it returns once every log write
// handed over is durable (or failed).
func (l *Loop) Run(d *Driver) {
	l.d = d
	defer close(l.stopped)
	ticker := time.NewTicker(l.cfg.Tick)
	defer ticker.Stop()
	pause := time.NewTimer(BackgroundInterval)
	defer pause.Stop()
	more := false
	// nextStep is when the next step of background work is due; only a
	// step moves it, so that events cannot put the work off.
	nextStep := time.Now()
	for {
		var resume <-chan time.Time // nil: wait for an event
		if more {
			pause.Reset(time.Until(nextStep))
			resume = pause.C
		}
		l.idleTurn = true
		stepped, ok := l.wait(ticker.C, resume)
		if !ok {
			l.idleTurn = false
			l.shutdown()
			return
		}
		if stepped {
			nextStep = time.Now().Add(BackgroundInterval)
		} else {
			l.drain()
		}
		more = l.finishTurn(d.Process())
		if l.cfg.AfterTurn != nil {
			l.cfg.AfterTurn()
		}
	}
}

// wait blocks for the next event and runs it, or until resume fires and
// then takes a step of the node's background work (stepped); ok is false
// once the loop should stop.
func (l *Loop) wait(tick, resume <-chan time.Time) (stepped, ok bool) {
	inbox := l.inbox
	if l.d.Saturated() {
		inbox = nil
	}
	select {
	case fn := <-inbox:
		fn()
	case fn := <-l.peers:
		fn()
	case fn := <-l.done:
		fn()
	case <-tick:
		l.d.Tick()
	case <-resume:
		l.d.StepBackground()
		return true, true
	case <-l.stopping:
		return false, false
	}
	return false, true
}

// drain runs every other event waiting, so that they share this turn's
// log write.
func (l *Loop) drain() {
	for i := 0; i < TurnEventsMax; i++ {
		inbox := l.inbox
		if l.d.Saturated() {
			inbox = nil
		}
		var fn func()
		select {
		case fn = <-l.done:
		case fn = <-l.peers:
		case fn = <-inbox:
		default:
			return
		}
		// A second event: the loop is not idle, and a log write held for
		// the turn's end starts now, while the loop takes the others.
		l.idleTurn = false
		l.spawnDeferred()
		fn()
	}
}

// finishTurn ends a turn, given what its Process reported: a log write
// held back (Background, in an idle turn) is carried out here, on the
// loop, if nothing has arrived meanwhile and the last one was quick, and
// the node then processes its outcome (the request's answer) in this
// turn; otherwise it goes to a goroutine as any other. Either way it
// starts only once the turn's Ready was carried out: its messages to
// peers went out before the loop waits on the disk. It returns what the
// node's latest Process reported.
func (l *Loop) finishTurn(more bool) bool {
	for l.deferred != nil {
		if !l.quiet() || time.Duration(l.walTook.Load()) > WALInlineMax {
			l.spawnDeferred()
			break
		}
		j := *l.deferred
		l.deferred = nil
		start := time.Now()
		err := j.RunSteps()
		l.walTook.Store(int64(time.Since(start)))
		j.Done(err)
		more = l.d.Process()
	}
	l.idleTurn = false
	return more
}

// quiet reports that no event waits for the loop.
func (l *Loop) quiet() bool { return len(l.inbox) == 0 && len(l.peers) == 0 && len(l.done) == 0 }

// spawnDeferred hands a log write held back to a goroutine.
func (l *Loop) spawnDeferred() {
	if j := l.deferred; j != nil {
		l.deferred = nil
		l.spawn(*j)
	}
}

// Stop ends the loop and waits until Run returned, once the log is
// durable. Call it only once Run was started.
func (l *Loop) Stop() {
	l.stopOnce.Do(func() { close(l.stopping) })
	<-l.stopped
}

// shutdown answers what waits, writes a checkpoint if the log tail is
// large, lets the log writer finish and makes the log durable.
func (l *Loop) shutdown() {
	l.d.Shutdown()
	l.checkpointOnStop()
	for !l.d.WALIdle() && !l.d.Failed() {
		fn := <-l.done
		fn()
	}
	if l.d.Failed() {
		return
	}
	if err := l.d.disk.Flush(); err != nil {
		l.d.fail(errorf("final log sync: %w", err))
	}
}

// checkpointOnStop writes the checkpoint that spares the restart its log
// tail, if the node asks for one, and waits until it is durable (and the
// log it replaces released), at most StopCheckpointMax. A write that takes
// longer is abandoned: checkpoints are written to a temporary file and
// renamed once synced, so the previous checkpoint and the log stay what
// the restart reads, and it replays the tail as it would have anyway.
func (l *Loop) checkpointOnStop() {
	l.d.StopCheckpoint()
	if !l.d.CheckpointBusy() {
		return
	}
	bound := l.cfg.StopCheckpointMax
	if bound <= 0 {
		bound = DefaultStopCheckpointMax
	}
	deadline := time.NewTimer(bound)
	defer deadline.Stop()
	for l.d.CheckpointBusy() {
		select {
		case fn := <-l.done:
			fn()
			l.d.Process()
		case <-deadline.C:
			l.d.AbandonCheckpoints()
			return
		}
	}
}
