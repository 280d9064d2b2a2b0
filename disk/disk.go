package disk

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal"
)

// Disk is a member's open data directory.
type Disk struct {
	fs      wal.FS
	dir     string
	walDir  string
	snapDir string
	w       *wal.WAL
	log     *slog.Logger
	// received numbers the snapshots received, for unique file names.
	received atomic.Uint64
	// keepReceived and leftovers: Options.KeepReceived.
	keepReceived bool
	leftovers    []wal.ReceivedTemp
}

// meta is what the log records about whose log it is.
type meta struct {
	MemberID  uint64 `json:"memberID"`
	ClusterID uint64 `json:"clusterID"`
}

// Options tune a data directory.
type Options struct {
	// SegmentBytes is the WAL segment size; zero means the default.
	SegmentBytes int64
	// UnsafeWALRepair cuts a corrupt record from the last log segment, and
	// everything after it, instead of refusing to start (logged at WARN).
	UnsafeWALRepair bool
	// KeepReceived leaves, at a restart, the files of snapshots received
	// and not installed (transfers that broke off, or the member stopped
	// before it took one) for ReceivedLeftovers: the next transfer
	// resumes from them. Without it they are removed.
	KeepReceived bool
	Logger       *slog.Logger
}

// ErrLogMissing is wrapped by the error for a data directory whose log is
// gone while signs of the member's earlier state remain.
var ErrLogMissing = errors.New("the member's log is missing")

// markerName is written, durably, once a member's log exists. It only
// ever tells that the directory held a member: without a log beside it,
// the log was lost, and starting afresh would drop what the member
// acknowledged.
const markerName = "initialized"

// HasLog reports whether dir holds a member's log; false means a new data
// directory. A directory whose log is gone (its segments or member/wal
// deleted) while its checkpoints or the marker written at bootstrap remain
// fails with an error wrapping ErrLogMissing that says what to do.
func HasLog(fsys wal.FS, dir string) (bool, error) {
	walDir, snapDir := path.Join(dir, "member", "wal"), path.Join(dir, "member", "snap")
	exists, err := wal.Exists(fsys, walDir)
	if err != nil || exists {
		return exists, err
	}
	var signs []string
	idxs, err := wal.ListCheckpoints(fsys, snapDir)
	if err != nil {
		return false, fmt.Errorf("disk: %w", err)
	}
	if n := len(idxs); n > 0 {
		signs = append(signs, fmt.Sprintf("%d checkpoint(s) in %s, the newest at index %d", n, snapDir, idxs[n-1]))
	}
	marker, err := hasMarker(fsys, dir)
	if err != nil {
		return false, err
	}
	if marker {
		signs = append(signs, fmt.Sprintf("the marker %s written when the member was created", path.Join(dir, "member", markerName)))
	}
	if len(signs) == 0 {
		return false, nil
	}
	return false, fmt.Errorf("disk: %w: %s holds no log segments, yet the member's earlier state is still there (%s): this member held data, "+
		"and starting it as a new member would silently lose every write it acknowledged. "+
		"Remove the member from the cluster (etcdctl member remove), delete the data directory and add the member back "+
		"(etcdctl member add, then start it with --initial-cluster-state existing); "+
		"or restore every member from a snapshot (detcd snapshot restore)",
		ErrLogMissing, walDir, strings.Join(signs, " and "))
}

func hasMarker(fsys wal.FS, dir string) (bool, error) {
	names, err := fsys.List(path.Join(dir, "member"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("disk: list %s: %w", path.Join(dir, "member"), err)
	}
	return slices.Contains(names, markerName), nil
}

// writeMarker writes the marker durably: under a temporary name, synced,
// renamed, and the directory synced.
func writeMarker(fsys wal.FS, dir string, m []byte) error {
	final := path.Join(dir, "member", markerName)
	tmp := final + ".tmp"
	f, err := fsys.Create(tmp)
	if err != nil {
		return fmt.Errorf("disk: create %s: %w", tmp, err)
	}
	_, err = f.Write(m)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, final)
	}
	if err == nil {
		err = fsys.SyncDir(path.Dir(final))
	}
	if err != nil {
		return fmt.Errorf("disk: write %s: %w", final, err)
	}
	return nil
}

// Open starts the member whose data lives in dir: a new member of a new
// cluster if dir holds no log, else the member the log names, restarted
// from its newest checkpoint and the log after it. It returns what
// recovery cut from a torn log tail, if anything, in the log.
func Open(fsys wal.FS, dir string, cfg core.Config, opts Options) (*core.Node, *Disk, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Disk{fs: fsys, dir: dir, walDir: path.Join(dir, "member", "wal"), snapDir: path.Join(dir, "member", "snap"), log: log, keepReceived: opts.KeepReceived}
	wopts := wal.Options{Dir: d.walDir, SegmentBytes: opts.SegmentBytes, UnsafeRepair: opts.UnsafeWALRepair, Bug: cfg.PlantedBug}
	exists, err := HasLog(fsys, dir)
	if err != nil {
		return nil, nil, err
	}
	if !exists {
		n, err := d.bootstrap(cfg, wopts)
		return n, d, err
	}
	n, err := d.restart(cfg, wopts)
	return n, d, err
}

func (d *Disk) bootstrap(cfg core.Config, wopts wal.Options) (*core.Node, error) {
	start := core.New
	if cfg.Join {
		start = core.NewJoining
	}
	n, err := start(cfg)
	if err != nil {
		return nil, err
	}
	if err := d.fs.MkdirAll(d.snapDir); err != nil {
		return nil, fmt.Errorf("disk: create %s: %w", d.snapDir, err)
	}
	m, _ := json.Marshal(meta{MemberID: cfg.ID, ClusterID: cfg.ClusterID})
	if d.w, err = wal.Create(d.fs, wopts, m); err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	if err := writeMarker(d.fs, d.dir, m); err != nil {
		return nil, err
	}
	d.log.Info("bootstrapped a new member", "member", fmt.Sprintf("%x", cfg.ID), "cluster", fmt.Sprintf("%x", cfg.ClusterID), "wal", d.walDir)
	return n, nil
}

func (d *Disk) restart(cfg core.Config, wopts wal.Options) (*core.Node, error) {
	if err := d.fs.MkdirAll(d.snapDir); err != nil {
		return nil, fmt.Errorf("disk: create %s: %w", d.snapDir, err)
	}
	if err := d.removeTemps(); err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	idxs, err := wal.ListCheckpoints(d.fs, d.snapDir)
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	var after uint64
	loaded := func() (*core.LoadedCheckpoint, error) { return nil, nil }
	if len(idxs) > 0 {
		after = idxs[len(idxs)-1]
		data, err := wal.MapCheckpoint(d.fs, d.snapDir, after)
		if err != nil {
			return nil, fmt.Errorf("disk: %w", err)
		}
		loaded = loadBeside(cfg, data)
	}
	w, rec, err := wal.Open(d.fs, wopts, after)
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	d.w = w
	if rec.TornTail != "" {
		d.log.Warn("cut a torn tail from the log", "detail", rec.TornTail)
	}
	if r := rec.Repaired; r != nil {
		d.log.Warn("--unsafe-wal-repair cut a corrupt record and everything after it from the log: writes this member acknowledged may be lost",
			"file", r.File, "offset", r.Offset, "dropped-bytes", r.DroppedBytes, "reason", r.Reason)
	}
	// Data directories from before the marker get it at their first
	// restart, and so does one whose bootstrap crashed before writing it.
	if ok, err := hasMarker(d.fs, d.dir); err != nil || !ok {
		if err == nil {
			err = writeMarker(d.fs, d.dir, rec.Meta)
		}
		if err != nil {
			return nil, err
		}
	}
	var m meta
	if err := json.Unmarshal(rec.Meta, &m); err != nil {
		return nil, fmt.Errorf("disk: %s: log metadata: %w", d.walDir, err)
	}
	if m.MemberID != cfg.ID || m.ClusterID != cfg.ClusterID {
		d.log.Info("the data directory names the member", "member", fmt.Sprintf("%x", m.MemberID), "cluster", fmt.Sprintf("%x", m.ClusterID))
		flagsID := cfg.ID
		cfg.ID, cfg.ClusterID = m.MemberID, m.ClusterID
		switch {
		case hasMember(cfg.Members, m.MemberID):
		case hasMember(cfg.Members, flagsID):
			// A member added at runtime got its ID from the cluster, not
			// from --initial-cluster: the entry the flags give it is this
			// member, with the name and client URLs it publishes.
			for i := range cfg.Members {
				if cfg.Members[i].ID == flagsID {
					cfg.Members[i].ID = m.MemberID
				}
			}
		default:
			cfg.Members = append(cfg.Members, core.Member{ID: m.MemberID})
		}
	}
	if len(idxs) == 0 && len(rec.Entries) == 0 && rec.HardState == (wal.HardState{}) {
		// The member crashed while bootstrapping, before its first log
		// write: it has promised nothing to anyone, so it bootstraps again.
		d.log.Warn("the log holds nothing: finishing an interrupted bootstrap", "wal", d.walDir)
		if cfg.Join {
			return core.NewJoining(cfg)
		}
		return core.New(cfg)
	}
	ckpt, err := loaded()
	if err != nil {
		return nil, fmt.Errorf("disk: checkpoint %s: %w", wal.CheckpointPath(d.snapDir, after), err)
	}
	n, err := core.Restart(cfg, core.Disk{Checkpoint: ckpt, HardState: rec.HardState, Entries: rec.Entries})
	if err != nil {
		return nil, err
	}
	d.log.Info("restarted member", "member", fmt.Sprintf("%x", m.MemberID), "checkpoint", after, "log-entries", len(rec.Entries))
	return n, nil
}

// loadBeside decodes a checkpoint's content on a goroutine of its own, so
// that it overlaps the restart's read of the log, and returns the wait
// for it. Decoding reads the content alone (file access stays on the
// caller's goroutine), so what it gives does not depend on the timing,
// under the simulator too.
func loadBeside(cfg core.Config, data []byte) func() (*core.LoadedCheckpoint, error) {
	type result struct {
		c   *core.LoadedCheckpoint
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := core.LoadCheckpoint(cfg, data)
		done <- result{c, err}
	}()
	return func() (*core.LoadedCheckpoint, error) {
		r := <-done
		return r.c, r.err
	}
}

func hasMember(ms []core.Member, id uint64) bool {
	for _, m := range ms {
		if m.ID == id {
			return true
		}
	}
	return false
}

// Persist writes a log write and syncs it if asked. Only when it returns
// nil may the driver call Node.Persisted.
func (d *Disk) Persist(p *core.Persist) error {
	if err := d.Write(p); err != nil {
		return err
	}
	if p.Sync {
		return d.w.Sync()
	}
	return nil
}

// Write buffers a log write without syncing it; Flush makes it durable.
// Drivers that batch several writes into one fsync use the pair.
// A snapshot from the leader, received into a sealed file
// (ReceiveSnapshot), becomes the checkpoint at its index first, durably,
// by a rename: the log records after it are only usable on top of it.
func (d *Disk) Write(p *core.Persist) error {
	if s := p.Snapshot; s != nil {
		if err := wal.InstallCheckpoint(d.fs, d.snapDir, s.Index, s.File); err != nil {
			return fmt.Errorf("disk: snapshot %d from the leader: %w", s.Index, err)
		}
	}
	return d.w.Save(p.HardState, p.Entries)
}

// ReceiveSnapshot starts writing the content of a snapshot of index that
// a leader streams to a temporary checkpoint file in the member's
// checkpoint directory, as it arrives. It may run on any goroutine.
func (d *Disk) ReceiveSnapshot(index uint64) (*wal.CheckpointWriter, error) {
	name := wal.ReceiveTempName(d.snapDir, index, d.received.Add(1))
	return wal.CreateCheckpoint(d.fs, d.snapDir, index, name)
}

// removeTemps removes what unfinished checkpoint writes left, and the
// received snapshots' files unless the disk keeps them.
func (d *Disk) removeTemps() error {
	if !d.keepReceived {
		return wal.RemoveCheckpointTemps(d.fs, d.snapDir)
	}
	left, err := wal.RemoveWriteTemps(d.fs, d.snapDir)
	for _, l := range left {
		// New files must not take a name a kept one has.
		if l.Seq > d.received.Load() {
			d.received.Store(l.Seq)
		}
	}
	d.leftovers = left
	return err
}

// ReceivedLeftovers lists the received snapshots' files a restart found
// (Options.KeepReceived), oldest first by their number: the caller keeps
// or removes them.
func (d *Disk) ReceivedLeftovers() []wal.ReceivedTemp {
	return slices.SortedFunc(slices.Values(d.leftovers), func(a, b wal.ReceivedTemp) int { return cmp.Compare(a.Seq, b.Seq) })
}

// ReadCheckpoint reads and verifies the checkpoint of index and returns
// its content. It may run on any goroutine.
func (d *Disk) ReadCheckpoint(index uint64) ([]byte, error) {
	return wal.ReadCheckpoint(d.fs, d.snapDir, index)
}

// ReadReceived reads and verifies a sealed received snapshot file of index
// and returns its content. It may run on any goroutine.
func (d *Disk) ReadReceived(name string, index uint64) ([]byte, error) {
	return wal.ReadCheckpointFile(d.fs, name, index)
}

// OpenPartial opens a received snapshot file that was kept unsealed
// (wal.CheckpointWriter.Keep), to resume its transfer. It may run on any
// goroutine.
func (d *Disk) OpenPartial(name string) (*wal.PartialCheckpoint, error) {
	return wal.OpenPartialCheckpoint(d.fs, name)
}

// RemoveReceived removes a received snapshot file that will not be
// installed. It may run on any goroutine.
func (d *Disk) RemoveReceived(name string) error {
	if err := d.fs.Remove(name); err != nil {
		return fmt.Errorf("disk: remove received snapshot %s: %w", name, err)
	}
	return nil
}

// Flush makes every written record durable.
func (d *Disk) Flush() error { return d.w.Sync() }

// WriteOut hands the written records to the file system without making
// them durable: the write before Flush's fsync, for a driver that
// schedules the two apart.
func (d *Disk) WriteOut() error { return d.w.Flush() }

// WriteCheckpoint writes a checkpoint durably and returns its size. It may
// run on its own goroutine.
func (d *Disk) WriteCheckpoint(c *core.Checkpoint) (int64, error) {
	var size int64
	err := wal.WriteCheckpoint(d.fs, d.snapDir, c.Index, func(w io.Writer) error {
		cw := &counter{w: w}
		err := c.Write(cw)
		size = cw.n
		return err
	})
	return size, err
}

// Removal is what durable checkpoints made redundant: log segments
// already taken off the log (Detach) and checkpoints below an index,
// for Remove to delete.
type Removal struct {
	segments          []string
	checkpointsBefore uint64
}

// Empty reports whether the removal has nothing to delete.
func (r *Removal) Empty() bool { return len(r.segments) == 0 && r.checkpointsBefore == 0 }

// Add appends a later removal to r, so that one Remove deletes both in
// order.
func (r *Removal) Add(later Removal) {
	r.segments = append(r.segments, later.segments...)
	r.checkpointsBefore = max(r.checkpointsBefore, later.checkpointsBefore)
}

// Detach takes the log segments rel makes redundant off the log, with
// the log's writer: it only updates the log's books, and Remove deletes
// the files later, off the writer, whose next fsync need not wait for a
// few hundred MB of files to go.
func (d *Disk) Detach(rel *core.Release) (Removal, error) {
	segs, err := d.w.DetachTo(rel.WALBefore)
	return Removal{segments: segs, checkpointsBefore: rel.CheckpointsBefore}, err
}

// Remove deletes what r names, log segments oldest first. It may run on
// any goroutine while the log is written; removals must run one at a
// time, in the order of their Detach.
func (d *Disk) Remove(r Removal) error {
	var errs []error
	if err := wal.RemoveSegments(d.fs, r.segments); err != nil {
		errs = append(errs, err)
	}
	idxs, err := wal.ListCheckpoints(d.fs, d.snapDir)
	if err != nil {
		errs = append(errs, err)
	}
	for _, i := range idxs {
		if i < r.checkpointsBefore {
			if err := wal.RemoveCheckpoint(d.fs, d.snapDir, i); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Close closes the log.
func (d *Disk) Close() error { return d.w.Close() }

type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Restore makes dir, which must hold no log, the data directory of a
// member of a new cluster whose state is backup (core.RestoreBackup): a
// checkpoint and a log that commits up to it. The member then starts
// from dir as from any restart.
func Restore(fsys wal.FS, dir string, cfg core.Config, backup core.Backup, ropts core.RestoreOptions, opts Options) error {
	walDir, snapDir := path.Join(dir, "member", "wal"), path.Join(dir, "member", "snap")
	exists, err := HasLog(fsys, dir)
	if err != nil {
		return fmt.Errorf("%w (restore into a new data directory)", err)
	}
	if exists {
		return fmt.Errorf("disk: %s already holds a log: restore into a new data directory", walDir)
	}
	index, head, writeKV, err := core.RestoreBackup(backup, cfg, ropts)
	if err != nil {
		return err
	}
	if err := fsys.MkdirAll(snapDir); err != nil {
		return fmt.Errorf("disk: create %s: %w", snapDir, err)
	}
	err = wal.WriteCheckpoint(fsys, snapDir, index, func(w io.Writer) error {
		if _, err := w.Write(head); err != nil {
			return err
		}
		return writeKV(w)
	})
	if err != nil {
		return fmt.Errorf("disk: restore checkpoint: %w", err)
	}
	m, _ := json.Marshal(meta{MemberID: cfg.ID, ClusterID: cfg.ClusterID})
	w, err := wal.Create(fsys, wal.Options{Dir: walDir, SegmentBytes: opts.SegmentBytes}, m)
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	if err := w.Save(&wal.HardState{Term: 1, Commit: index}, nil); err != nil {
		w.Close()
		return fmt.Errorf("disk: %w", err)
	}
	if err := w.Sync(); err != nil {
		w.Close()
		return fmt.Errorf("disk: %w", err)
	}
	if err := w.Close(); err != nil {
		return err
	}
	return writeMarker(fsys, dir, m)
}
