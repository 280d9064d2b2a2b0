package sim

import (
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/detcd/detcd/core"
)

// restoreOptions is a world whose operator restores the cluster, more
// than once within its run.
func restoreOptions(seed uint64) Options {
	o := SwarmOptions()
	o.Seed, o.Duration, o.Operators, o.Restore = seed, 60*time.Second, 2, "on"
	return o
}

// TestRestoreEpochs: a world that restores its cluster from its backups
// passes every check, replays, and restores with etcd's semantics: each
// epoch's cluster starts at the bumped revision, compacted there.
func TestRestoreEpochs(t *testing.T) {
	w := runPassingTwice(t, restoreOptions(5))
	c := w.checks
	if len(c.restores) < 2 || w.epoch != len(c.restores) {
		t.Fatalf("%d restores, epoch %d: want at least 2", len(c.restores), w.epoch)
	}
	last := c.restores[len(c.restores)-1]
	for _, m := range w.serving() {
		if m.node.ClusterID() != w.clusterID() || m.node.Rev() <= last.bumped || m.node.CompactRev() < last.bumped {
			t.Errorf("%s: cluster %x at revision %d compacted at %d; want cluster %x above %d, compacted at or above it",
				m.name, m.node.ClusterID(), m.node.Rev(), m.node.CompactRev(), w.clusterID(), last.bumped)
		}
	}
	epochs := map[int]bool{}
	for _, op := range c.history {
		epochs[op.Epoch] = true
	}
	if len(epochs) != len(c.restores)+1 {
		t.Errorf("operations in %d epochs, want %d", len(epochs), len(c.restores)+1)
	}
}

// TestEpochChecks: the epoch checks bite on what etcd's restore rules
// out, and let pass what it allows.
func TestEpochChecks(t *testing.T) {
	p := restorePoint{epoch: 1, at: 1_000, backupRev: 10, bumped: 1_010}
	put := func(epoch int, rev int64) *Op {
		return &Op{Kind: opPut, Epoch: epoch, Rev: rev, Call: 2_000, Return: 2_100}
	}
	ev := func(rev int64) []*mvccpb.Event {
		return []*mvccpb.Event{{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("g00/k0"), ModRevision: rev}}}
	}
	for _, tc := range []struct {
		name  string
		op    *Op
		log   []watchRecord
		wantF string
	}{
		{name: "a revision above the bump", op: put(1, 1_011)},
		{name: "a revision below the bump", op: put(1, 12), wantF: "below the restore's bumped revision"},
		{name: "an old epoch's revision", op: put(0, 12)},
		{name: "a watch resumed and canceled as compacted", log: []watchRecord{
			{at: 1_500, created: true, from: 12}, {at: 1_600, compactRev: 1_010}, {at: 1_700, created: true, from: 1_010}, {at: 1_800, events: ev(1_011)}}},
		{name: "a watch resumed below the bump delivers", log: []watchRecord{
			{at: 1_500, created: true, from: 12}, {at: 1_800, events: ev(1_011)}}, wantF: "must be canceled as compacted"},
		{name: "a watch created before the restore", log: []watchRecord{
			{at: 500, created: true, from: 5}, {at: 800, events: ev(6)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCheckers(&World{trace: newTracer(nil)})
			c.restores = []restorePoint{p}
			if tc.op != nil {
				c.checkEpochRev(tc.op)
			}
			if tc.log != nil {
				c.checkWatchResumes(&watchClient{log: tc.log})
			}
			switch {
			case tc.wantF == "" && len(c.failures) > 0:
				t.Fatalf("failures %v, want none", c.failures)
			case tc.wantF != "" && (len(c.failures) != 1 || !strings.Contains(c.failures[0], tc.wantF)):
				t.Fatalf("failures %v, want one with %q", c.failures, tc.wantF)
			}
		})
	}
}

// TestRestoreInPorcupineTime: a restore is an instant between its
// epochs, after every operation of the epoch it ended (which return by
// it at the latest) and before every one of the next; the model takes
// the backup's state of the group there.
func TestRestoreInPorcupineTime(t *testing.T) {
	p := restorePoint{epoch: 1, at: 1_000, backupRev: 10, bumped: 1_010, content: core.BackupContent{
		KVs: []*mvccpb.KeyValue{{Key: []byte("g00/k1"), Value: []byte("v"), ModRevision: 9, CreateRevision: 4, Version: 2}, {Key: []byte("g01/k0")}}}}
	restores := []restorePoint{p}
	at := 2*p.at + 1
	for _, tc := range []struct {
		name string
		op   *Op
	}{
		{"returned before", &Op{Call: 100, Return: 900}},
		{"unknown", &Op{Call: 900, Return: -1, Unknown: true}},
		{"answer still on its way", &Op{Call: 900, Return: 1_200}},
		{"called at the restore's instant", &Op{Call: 1_000, Return: 1_100}},
		{"next epoch", &Op{Epoch: 1, Call: 1_000, Return: 1_100}},
	} {
		call, ret := porcupineTimes(tc.op, restores)
		if call > ret || tc.op.Epoch == 0 && ret > at && call < at || tc.op.Epoch == 1 && call <= at {
			t.Errorf("%s: [%d,%d] against the restore at %d", tc.name, call, ret, at)
		}
	}
	ops := restoreOps(restores, 2, 3)
	if len(ops) != 2 || ops[0].Client != 3 {
		t.Fatalf("restore ops %v, want one per group, as client 3", ops)
	}
	s := stepModel(groupState{floor: 5}, ops[0])
	want := keyState{exists: true, value: "v", mod: 9, create: 4, version: 2}
	if len(s) != 1 || s[0].floor != p.bumped || s[0].keys[1] != want || s[0].keys[0].exists {
		t.Fatalf("group 0 after the restore: %+v, want k1 %+v and floor %d", s, want, p.bumped)
	}
}
