package sim

import (
	"crypto/sha256"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/detcd/detcd/core"
)

// chunksOf frames file as the Snapshot handler does: blobs counting
// the bytes down, then the SHA-256.
func chunksOf(file []byte, blobBytes int) []*pb.SnapshotResponse {
	var out []*pb.SnapshotResponse
	left := uint64(len(file) + sha256.Size)
	for len(file) > 0 {
		n := min(blobBytes, len(file))
		left -= uint64(n)
		out = append(out, &pb.SnapshotResponse{Blob: file[:n], RemainingBytes: left})
		file = file[n:]
	}
	return out
}

// TestSnapshotFraming: the stream must count down to a SHA-256 of what
// came before it.
func TestSnapshotFraming(t *testing.T) {
	file := []byte(strings.Repeat("etcd", 100))
	sum := sha256.Sum256(file)
	good := append(chunksOf(file, 64), &pb.SnapshotResponse{Blob: sum[:]})
	badSum := append(chunksOf(file, 64), &pb.SnapshotResponse{Blob: make([]byte, sha256.Size)})
	badCount := append(chunksOf(file, 64), &pb.SnapshotResponse{Blob: sum[:]})
	badCount[2] = &pb.SnapshotResponse{Blob: badCount[2].Blob, RemainingBytes: badCount[2].RemainingBytes + 1}
	for _, tc := range []struct {
		name   string
		chunks []*pb.SnapshotResponse
		why    string
	}{
		{"good", good, ""},
		{"wrong hash", badSum, "ends with SHA-256"},
		{"wrong count", badCount, "message 2 says"},
		{"hash only", good[len(good)-1:], "sent 1 messages"},
		{"nothing", nil, "sent 0 messages"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := snapshotFile(tc.chunks)
			if tc.why == "" && (why != "" || string(got) != string(file)+string(sum[:])) {
				t.Fatalf("good stream refused: %s", why)
			}
			if tc.why != "" && !strings.Contains(why, tc.why) {
				t.Fatalf("got %q, want %q", why, tc.why)
			}
		})
	}
}

// TestKeysAtAndDiff: the history's key space at a revision, and the first
// difference a backup's keys have from it.
func TestKeysAtAndDiff(t *testing.T) {
	kv := func(k, v string, create, mod, ver int64) *mvccpb.KeyValue {
		return &mvccpb.KeyValue{Key: []byte(k), Value: []byte(v), CreateRevision: create, ModRevision: mod, Version: ver}
	}
	h := history{
		base:    map[string]*mvccpb.KeyValue{"a": kv("a", "1", 2, 2, 1)},
		baseRev: 2,
		events: []*mvccpb.Event{
			{Kv: kv("b", "1", 3, 3, 1)},
			{Kv: kv("a", "2", 2, 4, 2)},
			{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte("b"), ModRevision: 5}},
		},
		scannedTo: 5,
	}
	if _, ok := h.keysAt(1); ok {
		t.Fatal("keysAt reached below the history's base")
	}
	if _, ok := h.keysAt(6); ok {
		t.Fatal("keysAt reached past the history")
	}
	at4, _ := h.keysAt(4)
	for _, tc := range []struct {
		name string
		got  []*mvccpb.KeyValue
		diff string
	}{
		{"same", []*mvccpb.KeyValue{kv("a", "2", 2, 4, 2), kv("b", "1", 3, 3, 1)}, ""},
		{"one revision behind", []*mvccpb.KeyValue{kv("a", "1", 2, 2, 1), kv("b", "1", 3, 3, 1)}, `key "a" holds "1"`},
		{"missing", []*mvccpb.KeyValue{kv("a", "2", 2, 4, 2)}, `key "b"="1" (mod 3) is missing`},
		{"extra", []*mvccpb.KeyValue{kv("a", "2", 2, 4, 2), kv("b", "1", 3, 3, 1), kv("c", "1", 4, 4, 1)}, `key "c"="1" (mod 4) should not exist`},
		{"other lease", []*mvccpb.KeyValue{kv("a", "2", 2, 4, 2), {Key: []byte("b"), Value: []byte("1"), CreateRevision: 3, ModRevision: 3, Version: 1, Lease: 7}}, "lease 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := diffKeys(tc.got, at4); tc.diff == "" && got != "" || !strings.Contains(got, tc.diff) {
				t.Fatalf("got %q, want %q", got, tc.diff)
			}
		})
	}
	at5, _ := h.keysAt(5)
	if len(at5) != 1 || string(at5["a"].Value) != "2" {
		t.Fatalf("state at 5: %v", at5)
	}
}

// TestRestoreDrill: a run whose operators take backups replays; a backup
// restores to its own state, and the drill notices a restored state that
// differs from the backup's.
func TestRestoreDrill(t *testing.T) {
	o := SwarmOptions()
	o.Seed, o.Duration, o.Operators = 11, 20*time.Second, 2
	w := runPassingTwice(t, o)
	c := w.checks
	if c.snap.last == nil || len(c.snap.lastContent.KVs) == 0 || len(c.snap.lastContent.Leases) == 0 {
		t.Fatalf("no backup with keys and leases taken (%d backups)", c.snap.taken)
	}
	for _, tc := range []struct {
		name   string
		tamper func(*core.BackupContent)
		want   string
	}{
		{"as taken", func(*core.BackupContent) {}, ""},
		{"another revision", func(b *core.BackupContent) { b.Revision++ }, "revision"},
		{"a key more", func(b *core.BackupContent) { b.KVs = append(b.KVs, &mvccpb.KeyValue{Key: []byte("zz")}) }, "keys"},
		{"a lease less", func(b *core.BackupContent) { b.Leases = b.Leases[1:] }, "leases"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.failures, c.failed = nil, nil
			want := c.snap.lastContent
			want.KVs, want.Leases = slices.Clone(want.KVs), slices.Clone(want.Leases)
			tc.tamper(&want)
			c.restoreDrill(w.members[0], c.snap.last, want)
			switch {
			case tc.want == "" && len(c.failures) > 0:
				t.Fatalf("the backup's own restore failed: %v", c.failures)
			case tc.want != "" && (len(c.failures) != 1 || !strings.Contains(c.failures[0], tc.want)):
				t.Fatalf("failures %v, want one about %s", c.failures, tc.want)
			}
		})
	}
}
