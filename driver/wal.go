package driver

import (
	"slices"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/disk"
)

// WALBatchMax is the most log writes one turn of the log writer takes:
// every write waiting when a turn starts shares its fsync (group commit),
// so a slow disk makes batches larger instead of a queue that never
// drains.
const WALBatchMax = 1024

// WALQueueMax bounds the log writes waiting for the writer. A runtime
// stops taking new requests while Saturated says the queue is full.
const WALQueueMax = 4 * WALBatchMax

type walOp struct {
	persist *core.Persist
	release *core.Release
}

// walWriter is the log writer's state, on the loop: one turn at a time is
// in the runtime's hands.
type walWriter struct {
	queue []walOp
	busy  bool
	// removing is set while a job deletes files durable checkpoints made
	// redundant; next gathers the ones released meanwhile, for the job
	// after it. One job at a time keeps log segments going oldest first.
	removing bool
	next     disk.Removal
	// written is where the log ends after the writes handed to the
	// writer; durable where it ended at the last successful fsync: a
	// restart must come back with at least that much.
	written, durable uint64
}

// Saturated reports that the log writer's queue is full: the runtime
// should take no new requests until a turn completes.
func (d *Driver) Saturated() bool { return len(d.wal.queue) >= WALQueueMax }

// WALIdle reports that every log write handed over is done, and every
// file released removed.
func (d *Driver) WALIdle() bool {
	return !d.wal.busy && len(d.wal.queue) == 0 && !d.wal.removing && d.wal.next.Empty()
}

// Written is the index the log ends at after the writes handed to the
// writer; Durable the index it ended at after the last fsync.
func (d *Driver) Written() uint64 { return d.wal.written }

// Durable is the index the log ended at after the last fsync.
func (d *Driver) Durable() uint64 { return d.wal.durable }

func (w *walWriter) enqueue(d *Driver, op walOp) {
	if p := op.persist; p != nil {
		if p.Snapshot != nil {
			w.written = p.Snapshot.Index
		}
		if n := len(p.Entries); n > 0 {
			// Raft's log ends at the last entry it appends, an overwrite
			// too.
			w.written = p.Entries[n-1].Index
		}
	}
	w.queue = append(w.queue, op)
	if !w.busy {
		w.turn(d)
	}
}

// turn hands the writes waiting to the runtime: written, then (if any of
// them asks) fsynced as one, then reported durable.
func (w *walWriter) turn(d *Driver) {
	n := min(len(w.queue), WALBatchMax)
	batch := slices.Clone(w.queue[:n])
	w.queue = slices.Delete(w.queue, 0, n)
	w.busy = true
	var last uint64
	sync := false
	for _, op := range batch {
		if p := op.persist; p != nil {
			last, sync = p.ID, sync || p.Sync
		}
	}
	// Writes queued after the batch moved w.written on; this turn covers
	// the log up to the batch's own end.
	end := batchEnd(batch, w.durable)
	var released disk.Removal
	steps := []Step{{Kind: StepWALWrite, Run: func() (err error) {
		released, err = d.writeBatch(batch, sync)
		return err
	}}}
	if sync {
		fsync := Step{Kind: StepWALSync, Run: d.syncLog}
		if d.planted(core.BugWALSyncBeforeFlush) {
			steps = []Step{fsync, steps[0]} // planted: the fsync runs before the write-out
		} else {
			steps = append(steps, fsync)
		}
	}
	d.env.Background(Job{Steps: steps, Done: func(err error) {
		if err != nil {
			d.fail(err)
			return
		}
		if sync {
			w.durable = end
		}
		w.remove(d, released)
		w.busy = false
		if last != 0 {
			d.obs.Durable(last)
			d.node.Persisted(last)
		}
		if len(w.queue) > 0 {
			w.turn(d)
		}
	}})
}

// batchEnd is where the log ends after batch, from prev.
func batchEnd(batch []walOp, prev uint64) uint64 {
	end := prev
	for _, op := range batch {
		if p := op.persist; p != nil {
			if p.Snapshot != nil {
				end = p.Snapshot.Index
			}
			if n := len(p.Entries); n > 0 {
				end = p.Entries[n-1].Index
			}
		}
	}
	return end
}

// writeBatch runs off the loop: it hands a turn's records to the file
// system, unsynced, and takes off the log what durable checkpoints made
// redundant, returning the files to remove.
func (d *Driver) writeBatch(batch []walOp, sync bool) (disk.Removal, error) {
	var released disk.Removal
	for _, op := range batch {
		if p := op.persist; p != nil {
			start := d.env.Now()
			if err := d.disk.Write(p); err != nil {
				return released, errorf("log write: %w", err)
			}
			d.obs.Wrote(p, d.env.Now().Sub(start))
		}
		if r := op.release; r != nil {
			rm, err := d.disk.Detach(r)
			if err != nil {
				d.log.Warn("releasing old log files", "err", err)
			}
			released.Add(rm)
		}
	}
	if !sync {
		return released, nil
	}
	if err := d.disk.WriteOut(); err != nil {
		return released, errorf("log write: %w", err)
	}
	return released, nil
}

// remove deletes the files released, in a job of its own after those
// released before: the log's next write and fsync do not wait for it.
func (w *walWriter) remove(d *Driver, released disk.Removal) {
	w.next.Add(released)
	if w.removing || w.next.Empty() {
		return
	}
	rm := w.next
	w.next = disk.Removal{}
	w.removing = true
	d.env.Background(Job{Steps: []Step{{Kind: StepRemove, Run: func() error { return d.disk.Remove(rm) }}}, Done: func(err error) {
		if err != nil {
			d.log.Warn("removing old log files and checkpoints", "err", err)
		}
		w.removing = false
		w.remove(d, disk.Removal{})
	}})
}

// syncLog runs off the loop: the turn's fsync.
func (d *Driver) syncLog() error {
	start := d.env.Now()
	if err := d.disk.Flush(); err != nil {
		return errorf("log fsync: %w", err)
	}
	d.obs.Synced(d.env.Now().Sub(start))
	return nil
}
