package sim

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/etcddb"
)

// The snapshot checks judge the backups operators take through
// Maintenance.Snapshot (sim/snapshotclient.go), as `etcdctl snapshot
// save` receives them and `etcdctl snapshot status` and `detcd snapshot
// restore` read them:
//
//   - the stream counts its bytes down to the SHA-256 it ends with, which
//     matches what came before it;
//   - the file is etcd's database file, and decodes (etcddb, as a restore
//     reads it);
//   - it was taken at a raft index no lower than the member had applied
//     when the call was sent (same incarnation), and its revision is the
//     one every member had after applying that index;
//   - it is compacted where a compaction took effect, if anywhere;
//   - its key space is the state at its revision by the history the
//     members applied (every key, value, create and mod revision, version
//     and lease);
//   - every lease a key is attached to is in its lease table, and every
//     lease there was granted by some member.
type snapChecks struct {
	// revAt is the revision after each applied raft index, as the first
	// member to apply it (or install a snapshot at it) had it.
	revAt map[uint64]int64
	// taken counts the backups checked; last is the newest, as read
	// back, and its content.
	taken       int
	last        []byte
	lastContent core.BackupContent
}

// snapApplied notes the revision m has after applying index, unless a
// member already noted it (raft safety checks that they agree); entries a
// member replays while it restarts, before it has a node, are skipped.
func (c *checkers) snapApplied(m *member, index uint64) {
	if m.node == nil || m.node.AppliedIndex() != index {
		return
	}
	if c.snap.revAt == nil {
		c.snap.revAt = map[uint64]int64{}
	}
	if _, ok := c.snap.revAt[index]; !ok {
		c.snap.revAt[index] = m.node.Rev()
	}
}

// checkSnapshot checks a snapshot stream that ended without an error.
func (c *checkers) checkSnapshot(call maintCall) {
	m, ss := call.m, call.snapshot
	file, why := snapshotFile(ss.chunks)
	if why != "" {
		c.fail("snapshot: %s's stream %s", m.name, why)
		return
	}
	backup, content, err := readSnapshot(file)
	if err != nil {
		c.fail("snapshot: %s's backup does not decode: %v", m.name, err)
		return
	}
	c.snap.taken++
	c.snap.last, c.snap.lastContent = backup, content
	c.w.trace.logf(c.w.now, "snapshot of %s: index %d, revision %d, compacted at %d, %d keys, %d leases",
		m.name, content.Index, content.Revision, content.CompactRevision, len(content.KVs), len(content.Leases))
	if m.inc == call.inc && content.Index < call.applied {
		c.fail("snapshot: %s's backup is at index %d, below the %d it had applied when the call was sent", m.name, content.Index, call.applied)
	}
	if rev, ok := c.snap.revAt[content.Index]; ok && rev != content.Revision {
		c.fail("snapshot: %s's backup at index %d holds revision %d, but the members were at revision %d after applying that index", m.name, content.Index, content.Revision, rev)
		return
	}
	if cr := content.CompactRevision; cr > 0 && !slices.ContainsFunc(c.compactions, func(cp compaction) bool { return cp.rev == cr }) {
		c.fail("snapshot: %s's backup is compacted at %d, where no compaction took effect", m.name, cr)
	}
	c.scanHistory()
	if want, ok := c.hist.keysAt(content.Revision); ok {
		if diff := diffKeys(content.KVs, want); diff != "" {
			c.fail("snapshot: %s's backup at revision %d does not hold the state at %d: %s", m.name, content.Revision, content.Revision, diff)
		}
	}
	c.checkSnapshotLeases(m, content)
	c.restoreDrill(m, backup, content)
}

// snapshotFile checks a stream's framing and returns the file `etcdctl
// snapshot save` writes from it, the database file and its SHA-256, or
// what is wrong with it.
func snapshotFile(chunks []*pb.SnapshotResponse) ([]byte, string) {
	if len(chunks) < 2 {
		return nil, fmt.Sprintf("sent %d messages, not a file and its SHA-256", len(chunks))
	}
	var file []byte
	for _, ch := range chunks[:len(chunks)-1] {
		file = append(file, ch.Blob...)
	}
	total := uint64(len(file) + sha256.Size)
	sent := uint64(0)
	for i, ch := range chunks {
		sent += uint64(len(ch.Blob))
		if ch.RemainingBytes != total-sent {
			return nil, fmt.Sprintf("message %d says %d bytes remain, but %d do", i, ch.RemainingBytes, total-sent)
		}
	}
	sum := sha256.Sum256(file)
	last := chunks[len(chunks)-1].Blob
	if !bytes.Equal(last, sum[:]) {
		return nil, fmt.Sprintf("ends with SHA-256 %x, but its %d bytes hash to %x", last, len(file), sum)
	}
	return append(file, last...), ""
}

// readSnapshot reads a snapshot file, the database file and its SHA-256,
// as `detcd snapshot restore` does (etcddb, over bbolt, which needs a
// file: one in memory), and returns the backup and its content.
func readSnapshot(file []byte) ([]byte, core.BackupContent, error) {
	path, remove, err := memFile(file)
	if err != nil {
		return nil, core.BackupContent{}, err
	}
	defer remove()
	backup, err := etcddb.ReadSnapshot(path, etcddb.HashRequired)
	if err != nil {
		return nil, core.BackupContent{}, err
	}
	content, err := core.ReadBackupContent(backup)
	return backup, content, err
}

// keysAt is the whole key space at revision rev, by the history; ok is
// false if the history does not reach back (or forward) to rev.
func (h *history) keysAt(rev int64) (map[string]*mvccpb.KeyValue, bool) {
	if rev < h.baseRev || rev > h.scannedTo {
		return nil, false
	}
	out := maps.Clone(h.base)
	if out == nil {
		out = map[string]*mvccpb.KeyValue{}
	}
	for _, ev := range h.events {
		if ev.Kv.ModRevision > rev {
			break
		}
		if ev.Type == mvccpb.Event_DELETE {
			delete(out, string(ev.Kv.Key))
		} else {
			out[string(ev.Kv.Key)] = ev.Kv
		}
	}
	return out, true
}

// diffKeys describes the first difference between a backup's keys and
// the state they should be, by key; "" if none.
func diffKeys(got []*mvccpb.KeyValue, want map[string]*mvccpb.KeyValue) string {
	have := map[string]*mvccpb.KeyValue{}
	for _, kv := range got {
		have[string(kv.Key)] = kv
	}
	keys := slices.Sorted(maps.Keys(have))
	for k := range want { //core:maporder-ok: collected, then sorted
		if have[k] == nil {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		g, w := have[k], want[k]
		switch {
		case w == nil:
			return fmt.Sprintf("key %q=%q (mod %d) should not exist", k, g.Value, g.ModRevision)
		case g == nil:
			return fmt.Sprintf("key %q=%q (mod %d) is missing", k, w.Value, w.ModRevision)
		case !proto.Equal(g, w):
			return fmt.Sprintf("key %q holds %s, want %s", k, describeKV(g), describeKV(w))
		}
	}
	return ""
}

func describeKV(kv *mvccpb.KeyValue) string {
	return fmt.Sprintf("%q (create %d, mod %d, version %d, lease %x)", kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
}

// checkSnapshotLeases: every key's lease is in the backup's lease table,
// and every lease there was granted.
func (c *checkers) checkSnapshotLeases(m *member, content core.BackupContent) {
	listed := map[int64]bool{}
	for _, l := range content.Leases {
		listed[l.ID] = true
		// The lease log notes every grant applied (and checkpoints,
		// which only a granted lease gets).
		if _, ok := c.leaseLog.ckpts[l.ID]; !ok && len(c.w.leasers) > 0 {
			c.fail("snapshot: %s's backup holds lease %x, which no member applied a grant of", m.name, l.ID)
			return
		}
	}
	for _, kv := range content.KVs {
		if kv.Lease != 0 && !listed[kv.Lease] {
			c.fail("snapshot: %s's backup attaches key %q to lease %x, which its lease table lacks", m.name, kv.Key, kv.Lease)
			return
		}
	}
}
