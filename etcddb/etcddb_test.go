package etcddb

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
)

// TestRoundTrip: for generated histories (puts, deletes, multi-key
// transactions, compactions, keys on leases) and generated states (leases,
// users, roles, auth, members, alarms), etcd's database file Write makes
// reads back, with ReadBackup, into exactly the backup detcd would have
// made of the same state, byte for byte: nothing is lost or changed on the
// way through etcd's format.
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	rapid.Check(t, func(t *rapid.T) {
		kv := genStore(t)
		ex := genState(t, kv)
		var keySpace bytes.Buffer
		if _, err := kv.WriteTo(&keySpace); err != nil {
			t.Fatal(err)
		}
		header, err := core.BackupHeader(ex)
		if err != nil {
			t.Fatal(err)
		}
		want := append(header, keySpace.Bytes()...)
		path := filepath.Join(dir, "db")
		defer os.Remove(path)
		if err := Write(path, ex, kv); err != nil {
			t.Fatalf("write: %v", err)
		}
		got, err := ReadBackup(path)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("the state through etcd's file:\n%x\nwant\n%x", got, want)
		}
		if streamed := openedBackup(t, path); !bytes.Equal(streamed, want) {
			t.Fatalf("the state streamed from etcd's file:\n%x\nwant\n%x", streamed, want)
		}
	})
}

// openedBackup is the backup OpenBackup streams from the file at path.
func openedBackup(t *rapid.T, path string) []byte {
	b, done, err := OpenBackup(path)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer done()
	got := bytes.NewBuffer(bytes.Clone(b.Head))
	if err := b.WriteKV(got); err != nil {
		t.Fatalf("stream: %v", err)
	}
	return got.Bytes()
}

var genKey = rapid.SampledFrom([]string{"a", "b", "ba", "c", "\x00", "\xff"})

// genStore draws a key space with a history.
func genStore(t *rapid.T) *mvcc.View {
	s := mvcc.New()
	for i := range rapid.IntRange(0, 40).Draw(t, "txns") {
		if lo := max(s.CompactRev()+1, 1); lo <= s.Rev() && rapid.IntRange(0, 7).Draw(t, fmt.Sprint("compact", i)) == 0 {
			rev := rapid.IntRange(int(lo), int(s.Rev())).Draw(t, fmt.Sprint("at", i))
			if err := s.Compact(mvcc.Revision(rev), nil); err != nil {
				t.Fatalf("compact %d: %v", rev, err)
			}
			for s.Step(rapid.IntRange(0, 5).Draw(t, fmt.Sprint("budget", i))) && rapid.Bool().Draw(t, fmt.Sprint("more", i)) {
			}
			continue
		}
		tx := s.Write()
		// Distinct keys: etcd refuses a key twice in one transaction.
		for j, key := range rapid.SliceOfNDistinct(genKey, 1, 3, rapid.ID).Draw(t, fmt.Sprint("keys", i)) {
			if rapid.IntRange(0, 3).Draw(t, fmt.Sprint("del", i, j)) == 0 {
				tx.DeleteRange([]byte(key), nil)
			} else {
				tx.Put([]byte(key), []byte(rapid.String().Draw(t, fmt.Sprint("v", i, j))), mvcc.LeaseID(rapid.IntRange(0, 2).Draw(t, fmt.Sprint("l", i, j))))
			}
		}
		tx.End()
	}
	return s.Snapshot()
}

// genState draws the rest of the state, in the orders etcd's buckets
// keep (members by their hex id, leases by id).
func genState(t *rapid.T, kv *mvcc.View) *core.ExchangeState {
	ex := &core.ExchangeState{
		Index: rapid.Uint64().Draw(t, "index"), Term: rapid.Uint64().Draw(t, "term"),
		ConfState:       &raftpb.ConfState{Voters: rapid.SliceOf(rapid.Uint64Min(1)).Draw(t, "voters")},
		ClusterVersion:  rapid.SampledFrom([]string{"", "3.6.0", "3.7.0"}).Draw(t, "version"),
		DowngradeTarget: rapid.SampledFrom([]string{"", "3.6.0"}).Draw(t, "downgrade"),
		AuthEnabled:     rapid.Bool().Draw(t, "authEnabled"),
		AuthRevision:    rapid.Uint64Min(1).Draw(t, "authRevision"),
		CompactRev:      int64(kv.CompactRev()),
	}
	for i, id := range rapid.SliceOfDistinct(rapid.Uint64Min(1), rapid.ID).Draw(t, "members") {
		m := core.Member{ID: id, Name: rapid.StringMatching(`[a-z]{0,4}`).Draw(t, fmt.Sprint("name", i)),
			PeerURLs:  []string{fmt.Sprintf("http://10.0.0.%d:2380", i)},
			IsLearner: rapid.Bool().Draw(t, fmt.Sprint("learner", i))}
		if rapid.Bool().Draw(t, fmt.Sprint("published", i)) {
			m.ClientURLs = []string{fmt.Sprintf("http://10.0.0.%d:2379", i)}
		}
		ex.Members = append(ex.Members, m)
	}
	slices.SortFunc(ex.Members, func(a, b core.Member) int {
		return bytes.Compare(memberKey(a.ID), memberKey(b.ID))
	})
	ex.Removed = rapid.SliceOfDistinct(rapid.Uint64Min(1), rapid.ID).Draw(t, "removed")
	slices.SortFunc(ex.Removed, func(a, b uint64) int {
		return bytes.Compare(memberKey(a), memberKey(b))
	})
	for i := range rapid.IntRange(0, 3).Draw(t, "alarms") {
		ex.Alarms = append(ex.Alarms, &pb.AlarmMember{MemberID: rapid.Uint64().Draw(t, fmt.Sprint("alarmMember", i)),
			Alarm: pb.AlarmType(rapid.IntRange(1, 2).Draw(t, fmt.Sprint("alarm", i)))})
	}
	for i, id := range rapid.SliceOfDistinct(rapid.Int64Min(1), rapid.ID).Draw(t, "leases") {
		ex.Leases = append(ex.Leases, core.ExchangeLease{ID: id,
			TTL:          rapid.Int64Range(0, 1e9).Draw(t, fmt.Sprint("ttl", i)),
			RemainingTTL: rapid.Int64Range(0, 1e9).Draw(t, fmt.Sprint("remaining", i))})
	}
	slices.SortFunc(ex.Leases, func(a, b core.ExchangeLease) int { return cmp.Compare(a.ID, b.ID) })
	for i, name := range rapid.SliceOfNDistinct(rapid.StringMatching(`[a-z]{1,5}`), 0, 4, rapid.ID).Draw(t, "users") {
		ex.Users = append(ex.Users, &authpb.User{Name: []byte(name),
			Password: []byte(rapid.StringMatching(`[a-z]{0,8}`).Draw(t, fmt.Sprint("pw", i))),
			Roles:    rapid.SliceOfNDistinct(rapid.StringMatching(`[a-z]{1,3}`), 0, 3, rapid.ID).Draw(t, fmt.Sprint("roles", i))})
	}
	for i, name := range rapid.SliceOfNDistinct(rapid.StringMatching(`[a-z]{1,5}`), 0, 4, rapid.ID).Draw(t, "roles") {
		r := &authpb.Role{Name: []byte(name)}
		for j := range rapid.IntRange(0, 3).Draw(t, fmt.Sprint("perms", i)) {
			r.KeyPermission = append(r.KeyPermission, &authpb.Permission{
				PermType: authpb.Permission_Type(rapid.IntRange(0, 2).Draw(t, fmt.Sprint("type", i, j))),
				Key:      []byte(genKey.Draw(t, fmt.Sprint("key", i, j))), RangeEnd: []byte(rapid.SampledFrom([]string{"", "z", "\x00"}).Draw(t, fmt.Sprint("end", i, j)))})
		}
		ex.Roles = append(ex.Roles, r)
	}
	return ex
}

// TestReadBackupRefuses: files that are not etcd's database, or whose key
// bucket does not decode, are refused with ErrNotEtcd or
// mvcc.ErrBadBucket, never read in part.
func TestReadBackupRefuses(t *testing.T) {
	rev := func(main, sub uint64, tomb bool) []byte {
		b := binary.BigEndian.AppendUint64(nil, main)
		b = binary.BigEndian.AppendUint64(append(b, '_'), sub)
		if tomb {
			b = append(b, 't')
		}
		return b
	}
	kv := func(key string, mod int64) []byte {
		b, _ := proto.Marshal(&mvccpb.KeyValue{Key: []byte(key), CreateRevision: mod, ModRevision: mod, Version: 1})
		return b
	}
	for _, tc := range []struct {
		name    string
		buckets map[string][][2][]byte
		want    error
	}{
		{"no buckets", nil, ErrNotEtcd},
		{"no meta bucket", map[string][][2][]byte{"key": nil}, ErrNotEtcd},
		{"a key that is no revision", map[string][][2][]byte{"meta": nil, "key": {{[]byte("k"), kv("k", 2)}}}, mvcc.ErrBadBucket},
		{"a value that is no KeyValue", map[string][][2][]byte{"meta": nil, "key": {{rev(2, 0, false), []byte{0xff}}}}, mvcc.ErrBadBucket},
		{"a mod revision that is not its key's", map[string][][2][]byte{"meta": nil, "key": {{rev(2, 0, false), kv("k", 3)}}}, mvcc.ErrBadBucket},
		{"a bad compaction point", map[string][][2][]byte{"meta": {{[]byte("finishedCompactRev"), []byte("x")}}, "key": nil}, ErrNotEtcd},
		{"a bad consistent index", map[string][][2][]byte{"meta": {{[]byte("consistent_index"), []byte("x")}}, "key": nil}, ErrNotEtcd},
	} {
		path := filepath.Join(t.TempDir(), "db")
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			for name, kvs := range tc.buckets {
				b, err := tx.CreateBucket([]byte(name))
				if err != nil {
					return err
				}
				for _, e := range kvs {
					if err := b.Put(e[0], e[1]); err != nil {
						return err
					}
				}
			}
			return nil
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ReadBackup(path); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if err := streamBackup(path); !errors.Is(err, tc.want) {
			t.Errorf("%s, streamed: %v, want %v", tc.name, err, tc.want)
		}
	}
	notBolt := filepath.Join(t.TempDir(), "db")
	if err := os.WriteFile(notBolt, bytes.Repeat([]byte("x"), 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadBackup(notBolt); !errors.Is(err, ErrNotEtcd) {
		t.Errorf("a file that is not bolt: %v", err)
	}
	if err := streamBackup(notBolt); !errors.Is(err, ErrNotEtcd) {
		t.Errorf("a file that is not bolt, streamed: %v", err)
	}
}

// streamBackup opens the file at path with OpenBackup and streams its key
// space nowhere, for the error.
func streamBackup(path string) error {
	b, done, err := OpenBackup(path)
	if err != nil {
		return err
	}
	defer done()
	return b.WriteKV(io.Discard)
}

// TestWriteKeysBoundsTransactions: the key bucket is written in
// transactions bounded by bytes as well as by keys, so that a store of
// large values (8 GiB of 64 KiB values) never has a transaction's worth
// of gigabytes in memory; every value arrives whole though each
// transaction reuses the buffers of the one before.
func TestWriteKeysBoundsTransactions(t *testing.T) {
	s := mvcc.New()
	const keys, valueBytes = 10, 1000
	for i := range keys {
		tx := s.Write()
		tx.Put(fmt.Appendf(nil, "k%02d", i), bytes.Repeat([]byte{byte('a' + i)}, valueBytes), 0)
		tx.End()
	}
	kv := s.Snapshot()
	for _, c := range []struct{ keysMax, bytesMax, want int }{
		{keysMax: 100, bytesMax: 1 << 20, want: 1},
		{keysMax: 4, bytesMax: 1 << 20, want: 3},
		// Three entries reach 2,500 bytes: a transaction each three.
		{keysMax: 100, bytesMax: 2500, want: 4},
		{keysMax: 100, bytesMax: 1, want: keys},
	} {
		db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error { return writeState(tx, &core.ExchangeState{}) }); err != nil {
			t.Fatal(err)
		}
		txs, err := writeKeys(db, kv, c.keysMax, c.bytesMax)
		if err != nil {
			t.Fatal(err)
		}
		if txs != c.want {
			t.Errorf("at most %d keys and %d bytes a transaction: %d transactions, want %d", c.keysMax, c.bytesMax, txs, c.want)
		}
		// Each value whole, though the transactions reuse their buffers.
		n := 0
		err = db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketKey).ForEach(func(_, v []byte) error {
				if !bytes.Contains(v, bytes.Repeat([]byte{byte('a' + n)}, valueBytes)) {
					t.Errorf("entry %d does not hold its value", n)
				}
				n++
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if n != keys {
			t.Errorf("%d keys in the key bucket, want %d", n, keys)
		}
		db.Close()
	}
}
