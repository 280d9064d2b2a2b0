package driver

import (
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/watch"
)

// Env is the runtime a Driver runs on.
type Env interface {
	// Background runs j's steps in order, off the loop, and then calls
	// j.Done on the loop with the first step's error (nil if none failed;
	// later steps do not run after a failure). The real runtime runs them
	// on a goroutine (or, for a log write while it is idle, on the loop
	// itself, Done right after: the order is the same); the simulator
	// runs each step as an event of its own, after the latency its kind
	// has on the simulated disk.
	Background(j Job)
	// Now is the runtime's time, for durations in logs and metrics only:
	// no decision depends on it.
	Now() time.Time
	// Fail reports a failure after which the member cannot go on (a
	// failed fsync cannot be retried safely). The driver does nothing
	// more after it.
	Fail(err error)
}

// StepKind says what a background step does, for the simulator's
// latencies and faults.
type StepKind int

const (
	// StepWALWrite hands log records to the file system, unsynced.
	StepWALWrite StepKind = iota + 1
	// StepWALSync fsyncs the log.
	StepWALSync
	// StepCheckpoint writes a full-state checkpoint durably.
	StepCheckpoint
	// StepHash hashes the key space for the corruption checks.
	StepHash
	// StepSnapshotLoad decodes a snapshot received from the leader
	// (Step.Bytes of content).
	StepSnapshotLoad
	// StepRemove removes a file the member no longer needs.
	StepRemove
	// StepSnapshotCheck reads back and checks a snapshot received from
	// the leader (Step.Bytes of content), before the node takes it.
	StepSnapshotCheck
)

func (k StepKind) String() string {
	switch k {
	case StepWALWrite:
		return "wal-write"
	case StepWALSync:
		return "wal-sync"
	case StepCheckpoint:
		return "checkpoint"
	case StepHash:
		return "hash"
	case StepSnapshotLoad:
		return "snapshot-load"
	case StepRemove:
		return "remove"
	case StepSnapshotCheck:
		return "snapshot-check"
	}
	return "step?"
}

// Step is one part of a background job.
type Step struct {
	Kind StepKind
	// Bytes is how much data the step handles, where its time depends on
	// it (StepSnapshotLoad, StepSnapshotCheck), for the simulator's
	// latencies.
	Bytes int64
	// HoldsLoop says the step runs on the loop, which does nothing else
	// until it is over: only a planted bug (core.BugSnapshotLoadOnLoop)
	// asks for it, to bring back the old snapshot install.
	HoldsLoop bool
	Run       func() error
}

// Job is work the loop hands off: its steps run in order, off the loop;
// Done runs on the loop once they are over.
type Job struct {
	Steps []Step
	Done  func(err error)
}

// holdsLoop says whether a step of the job holds the loop.
func (j Job) holdsLoop() bool {
	for _, s := range j.Steps {
		if s.HoldsLoop {
			return true
		}
	}
	return false
}

// logWrite says whether the job is a log write: its steps write or fsync
// the log, nothing else.
func (j Job) logWrite() bool {
	for _, s := range j.Steps {
		if s.Kind != StepWALWrite && s.Kind != StepWALSync {
			return false
		}
	}
	return len(j.Steps) > 0
}

// RunSteps runs the job's steps in order, up to the first that fails, and
// returns its error: what a runtime does off the loop before it calls
// Done on the loop.
func (j Job) RunSteps() error {
	for _, s := range j.Steps {
		if err := s.Run(); err != nil {
			return err
		}
	}
	return nil
}

// Transport carries messages to the other members. Its methods run on
// the loop and must not block: a message that cannot go now is dropped
// (raft retries) and, for raft messages, reported with
// Driver.ReportUnreachable.
type Transport interface {
	Send(msgs []*raftpb.Message)
	SendPeer(msgs []*core.PeerMessage)
	// SendSnapshot streams a snapshot to a member that fell behind the
	// log, off the loop; the outcome comes back through
	// Driver.ReportSnapshot, on the loop.
	SendSnapshot(s core.OutgoingSnapshot)
}

// Sink takes a watch stream's responses from the loop. Push never blocks:
// the stream's credit in the node bounds what it holds.
type Sink interface {
	Push(o watch.Out)
	// End says the stream is over (the member is stopping).
	End()
}

// Observer is told what the driver does, for traces and metrics. Its
// methods run on the loop, except where noted.
type Observer interface {
	// Ready sees every non-empty Ready before it is carried out.
	Ready(rd *core.Ready)
	// Wrote: a log write was handed to the disk (off the loop).
	Wrote(p *core.Persist, took time.Duration)
	// Synced: the log was fsynced (off the loop).
	Synced(took time.Duration)
	// Durable: writes up to id are durable and reported to the node.
	Durable(id uint64)
	// Checkpointed: a checkpoint was written, or failed.
	Checkpointed(index uint64, size int64, took time.Duration, err error)
}

// NopObserver observes nothing; embed it to observe only some things.
type NopObserver struct{}

func (NopObserver) Ready(*core.Ready)                                {}
func (NopObserver) Wrote(*core.Persist, time.Duration)               {}
func (NopObserver) Synced(time.Duration)                             {}
func (NopObserver) Durable(uint64)                                   {}
func (NopObserver) Checkpointed(uint64, int64, time.Duration, error) {}
