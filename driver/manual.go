package driver

import "time"

// Manual is a runtime for tests that step a member by hand: background
// work waits until RunPending runs it, on the caller's goroutine, and
// time stands still.
type Manual struct {
	pending []Job
	// Err is the failure the driver reported, if any.
	Err error
}

// Background implements Env.
func (m *Manual) Background(j Job) { m.pending = append(m.pending, j) }

// Now implements Env.
func (m *Manual) Now() time.Time { return time.Time{} }

// Fail implements Env.
func (m *Manual) Fail(err error) {
	if m.Err == nil {
		m.Err = err
	}
}

// Pending is the number of jobs waiting.
func (m *Manual) Pending() int { return len(m.pending) }

// RunPending runs the jobs waiting, in the order they were handed over
// (not the ones they cause), and reports whether there were any.
func (m *Manual) RunPending() bool {
	jobs := m.pending
	m.pending = nil
	for _, j := range jobs {
		j.Done(j.RunSteps())
	}
	return len(jobs) > 0
}
