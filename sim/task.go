package sim

import (
	"context"
	cryptorand "crypto/rand"
	"iter"
	"maps"
	"slices"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/driver"
)

// task is a request handler running in the world: a coroutine on the
// world's one thread. It runs until it waits (a Signal), and the world
// resumes it, as an event, once what it waits for happened. Only one task
// runs at a time and only the world switches between them, so handlers
// written as blocking code (grpcsvc's) run deterministically, with no
// goroutine scheduler in the way.
type task struct {
	w    *World
	id   uint64
	next func() (struct{}, bool)
	stop func()
	// yield parks the task; it is set when the coroutine starts.
	yield func(struct{}) bool
	// stopped is set when the world ends the task: its next wait unwinds
	// it.
	stopped bool
	done    bool
}

// errTaskStopped unwinds a task the world ended.
type errTaskStopped struct{}

// tasksMax bounds the tasks alive at once; every client has at most a
// few requests and streams in flight, so more is a leak.
const tasksMax = 1 << 14

// spawn starts fn as a task and runs it until it first waits or ends.
func (w *World) spawn(fn func()) {
	if w.curTask != nil {
		panic("sim: spawn inside a task")
	}
	if len(w.tasks) >= tasksMax {
		panic("sim: too many tasks alive")
	}
	w.nextTask++
	t := &task{w: w, id: w.nextTask}
	t.next, t.stop = iter.Pull(func(yield func(struct{}) bool) {
		t.yield = yield
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(errTaskStopped); !ok {
					panic(r)
				}
			}
		}()
		fn()
	})
	w.tasks[t.id] = t
	t.resume()
}

// resume runs the task until it next waits or ends, with the world's
// task randomness in place of crypto/rand.Reader (bcrypt's salts).
func (t *task) resume() {
	w := t.w
	if t.done || w.curTask != nil {
		return
	}
	prev := cryptorand.Reader
	cryptorand.Reader = w.taskRand
	w.curTask = t
	_, ok := t.next()
	w.curTask = nil
	cryptorand.Reader = prev
	if !ok {
		t.done = true
		delete(w.tasks, t.id)
	}
}

// park suspends the running task until the world resumes it.
func (t *task) park() {
	if t.stopped || !t.yield(struct{}{}) {
		panic(errTaskStopped{})
	}
}

// sleep parks the running task for d microseconds of virtual time.
func (w *World) sleep(d int64) {
	t := w.curTask
	if t == nil {
		panic("sim: sleep outside a task")
	}
	w.after(d, t.resume)
	t.park()
}

// stopTasks ends every task still alive, at the end of a run.
func (w *World) stopTasks() {
	for _, id := range slices.Sorted(maps.Keys(w.tasks)) {
		t := w.tasks[id]
		t.stopped = true
		t.stop()
		delete(w.tasks, id)
	}
}

// taskRuntime is one incarnation of a member as a driver.Runtime: handlers
// post to the member's loop as its events, and wait as tasks.
type taskRuntime struct {
	m   *member
	inc int
}

// Post implements driver.Runtime: fn runs as the member's next event.
func (r *taskRuntime) Post(ctx context.Context, fn func()) error {
	m := r.m
	if m.inc != r.inc || !m.up {
		return core.ErrStopped
	}
	m.w.schedule(m.w.now, m.event(fn))
	return nil
}

// NewSignal implements driver.Runtime.
func (r *taskRuntime) NewSignal() driver.Signal { return r.m.newSignal(r.inc) }

// Go implements driver.Runtime: fn starts as a task of its own, as the
// member's next event (a task cannot start another while it runs), and
// only in this incarnation: a crash ends a process's goroutines. When it
// ends (a stream's receive side that failed has canceled the context its
// handler waits with), the member's waits are woken to see their
// contexts, as the real runtime's waits watch them.
func (r *taskRuntime) Go(fn func()) {
	m := r.m
	m.w.schedule(m.w.now, func() {
		if m.inc != r.inc || !m.up {
			return
		}
		m.w.spawn(func() {
			fn()
			if m.inc == r.inc {
				m.w.schedule(m.w.now, m.wakeWaits)
			}
		})
	})
}

// newSignal is a wait on incarnation inc of the member.
func (m *member) newSignal(inc int) *signal {
	m.w.nextSignal++
	return &signal{m: m, id: m.w.nextSignal, inc: inc}
}

// signal is a wait of a task on a member: it ends when fired, or with
// core.ErrStopped when the member crashes.
type signal struct {
	m      *member
	id     uint64
	inc    int
	fired  bool
	parked *task
}

func (s *signal) Fire() {
	s.fired = true
	s.wake()
}

func (s *signal) wake() {
	if t := s.parked; t != nil {
		s.parked = nil
		delete(s.m.waits, s.id)
		s.m.w.schedule(s.m.w.now, t.resume)
	}
}

func (s *signal) Wait(ctx context.Context) error {
	m := s.m
	for {
		switch {
		case s.fired:
			return nil
		case m.inc != s.inc || !m.up:
			return core.ErrStopped
		case ctx.Err() != nil:
			return ctx.Err()
		}
		t := m.w.curTask
		if t == nil {
			panic("sim: a wait outside a task")
		}
		s.parked = t
		m.waits[s.id] = s
		t.park()
	}
}

// wakeWaits resumes every task waiting on the member: after a crash, they
// see core.ErrStopped; after contexts ended (the guard ended streams), a
// wait whose context ended returns, the others wait again.
func (m *member) wakeWaits() {
	for _, id := range slices.Sorted(maps.Keys(m.waits)) {
		m.waits[id].wake()
	}
}
