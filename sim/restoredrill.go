package sim

import (
	cryptorand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/core/wal/memfs"
	"github.com/detcd/detcd/disk"
)

// restoredClusterID is the cluster id of the cluster a restore drill
// makes: a new cluster, as etcd's restore makes one from
// --initial-cluster-token.
const restoredClusterID = 0x5e570e

// restoreDrill does with a backup what an operator's disaster recovery
// does with it, as `detcd snapshot restore` does (disk.Restore, the same
// code, on a new in-memory data directory instead of an os one), starts
// a member from the data directory, and checks that it holds the
// backup's state: its revision and compaction point, every key as the
// backup has it, its leases (etcd's restore keeps the lease bucket), the
// new cluster's id and members, all voters. The world's members go on
// untouched: the drill checks the restore, not a cluster run from it.
// The restored log has the members' segment size, not the 64 MB default:
// the size changes nothing the drill checks, and starting the member
// would otherwise read the default's preallocated zeros, tens of
// milliseconds of CPU per drill.
func (c *checkers) restoreDrill(m *member, backup []byte, want core.BackupContent) {
	cfg := m.cfg // the restoring member's flags, in a new cluster
	cfg.ClusterID, cfg.Join, cfg.OnApply = restoredClusterID, false, nil
	cfg.Members = c.w.restoreMembers()
	cfg.ID = cfg.Members[0].ID
	fsys := memfs.New()
	opts := disk.Options{SegmentBytes: m.segmentBytes}
	b, err := core.BackupOf(backup)
	if err == nil {
		err = disk.Restore(fsys, "data", cfg, b, core.RestoreOptions{}, opts)
	}
	if err != nil {
		c.fail("snapshot: restoring %s's backup at revision %d: %v", m.name, want.Revision, err)
		return
	}
	if why := restoredState(fsys, cfg, opts, want); why != "" {
		c.fail("snapshot: %s's backup at revision %d restored: %s", m.name, want.Revision, why)
	}
}

// restoreMembers is the cluster a restore makes: the world's members that
// are not removed, as --initial-cluster names them.
func (w *World) restoreMembers() []core.Member {
	var ms []core.Member
	for _, m := range w.live() {
		ms = append(ms, core.Member{ID: m.id, Name: m.name, PeerURLs: []string{fmt.Sprintf("http://%s:2380", m.name)}})
	}
	return ms
}

// drillJitterSeed seeds the election jitter of the member a drill starts:
// raft reads crypto/rand.Reader when it makes its node, and the drill's
// member is no member of the world.
var drillJitterSeed = [32]byte{'d', 'r', 'i', 'l', 'l'}

// restoredState starts a member from a restored data directory and says
// how its state differs from the backup's; "" if it does not.
func restoredState(fsys *memfs.FS, cfg core.Config, opts disk.Options, want core.BackupContent) string {
	prev := cryptorand.Reader
	cryptorand.Reader = rand.NewChaCha8(drillJitterSeed)
	n, d, err := disk.Open(fsys, "data", cfg, opts)
	cryptorand.Reader = prev
	if err != nil {
		return fmt.Sprintf("the restored member does not start: %v", err)
	}
	defer d.Close()
	if n.ClusterID() != cfg.ClusterID || len(n.Members()) != len(cfg.Members) {
		return fmt.Sprintf("cluster %x with %d members, want the new cluster %x with %d", n.ClusterID(), len(n.Members()), cfg.ClusterID, len(cfg.Members))
	}
	if slices.ContainsFunc(n.Members(), func(m core.Member) bool { return m.IsLearner }) {
		return "a member is restored as a learner"
	}
	if n.Rev() != want.Revision || max(n.CompactRev(), 0) != max(want.CompactRevision, 0) {
		return fmt.Sprintf("revision %d compacted at %d, want %d compacted at %d", n.Rev(), n.CompactRev(), want.Revision, want.CompactRevision)
	}
	v, _ := n.View()
	rr, err := core.ExecuteRange(v, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		return fmt.Sprintf("its keys do not read: %v", err)
	}
	if !slices.EqualFunc(rr.Kvs, want.KVs, func(a, b *mvccpb.KeyValue) bool { return proto.Equal(a, b) }) {
		return fmt.Sprintf("it holds %d keys, the backup %d, or other ones", len(rr.Kvs), len(want.KVs))
	}
	return restoredLeases(fsys, n.AppliedIndex(), want)
}

// restoredLeases compares the leases of the restored member's checkpoint
// with the backup's.
func restoredLeases(fsys *memfs.FS, index uint64, want core.BackupContent) string {
	ckpt, err := wal.ReadCheckpoint(fsys, "data/member/snap", index)
	if err != nil {
		return fmt.Sprintf("its checkpoint at index %d does not read: %v", index, err)
	}
	got, err := core.ReadBackupContent(ckpt)
	if err != nil {
		return fmt.Sprintf("its checkpoint does not decode: %v", err)
	}
	if !slices.Equal(got.Leases, want.Leases) {
		return fmt.Sprintf("leases %s, want the backup's %s", leaseList(got.Leases), leaseList(want.Leases))
	}
	return ""
}

// leaseList describes leases as ids and TTLs.
func leaseList(ls []core.ExchangeLease) string {
	var b strings.Builder
	b.WriteString("[")
	for i, l := range ls {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%x ttl %ds", l.ID, l.TTL)
	}
	return b.String() + "]"
}
