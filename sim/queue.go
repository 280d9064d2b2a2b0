package sim

import "container/heap"

// event is something that happens at a virtual time. Events at the same
// time run in the order they were scheduled.
type event struct {
	at  int64
	seq uint64
	fn  func()
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

// schedule runs fn at virtual time at (not before now).
func (w *World) schedule(at int64, fn func()) {
	if at < w.now {
		at = w.now
	}
	w.seq++
	heap.Push(&w.queue, &event{at: at, seq: w.seq, fn: fn})
}

// after runs fn d microseconds from now.
func (w *World) after(d int64, fn func()) { w.schedule(w.now+d, fn) }

// step runs the next event; it reports false when the queue is empty or
// the next event is past until.
func (w *World) step(until int64) bool {
	if len(w.queue) == 0 || w.queue[0].at > until {
		return false
	}
	e := heap.Pop(&w.queue).(*event)
	w.now = e.at
	e.fn()
	return true
}
