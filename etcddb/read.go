package etcddb

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-semver/semver"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
)

// ErrNotEtcd is a file that is not an etcd 3.5-3.7 database.
var ErrNotEtcd = errors.New("not an etcd v3 database")

// boltMagic is what bolt writes in the meta page at the head of its files
// (after the 16-byte page header): how a file is told to be etcd's.
const boltMagic = 0xED0CDAED

// IsBolt reports whether head, the start of a file, is a bolt database's.
func IsBolt(head []byte) bool {
	return len(head) >= 20 && binary.LittleEndian.Uint32(head[16:20]) == boltMagic
}

// ReadBackup reads etcd's database file at path (without a snapshot's
// trailing hash) into a detcd backup, as core.BackupOf and
// core.StatBackup take it. The file is checked as etcdutl snapshot status
// checks it, and must have etcd's schema.
func ReadBackup(path string) ([]byte, error) {
	db, err := openDB(path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var backup []byte
	err = db.View(func(tx *bolt.Tx) error {
		ex, header, err := checkedState(tx)
		if err != nil {
			return err
		}
		var im mvcc.BucketImporter
		if err := tx.Bucket(bucketKey).ForEach(im.Add); err != nil {
			return err
		}
		backup = im.AppendCheckpoint(header, mvcc.Revision(ex.CompactRev))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("etcd database %s: %w", path, err)
	}
	return backup, nil
}

// OpenBackup opens etcd's database file at path, checked as ReadBackup
// checks it, as a backup to restore whose key space is streamed from the
// file as the restore writes it: a restore holds a buffer of it and the
// keys at or below the compaction point (mvcc.BucketWriter), not the
// store. done ends the read; call it after the restore.
func OpenBackup(path string) (b core.Backup, done func() error, err error) {
	db, err := openDB(path)
	if err != nil {
		return b, nil, err
	}
	tx, err := db.Begin(false)
	if err != nil {
		db.Close()
		return b, nil, fmt.Errorf("etcd database %s: %w", path, err)
	}
	done = func() error {
		tx.Rollback() // a read-only transaction: nothing to undo
		return db.Close()
	}
	ex, header, err := checkedState(tx)
	if err != nil {
		done()
		return b, nil, fmt.Errorf("etcd database %s: %w", path, err)
	}
	keys := tx.Bucket(bucketKey)
	b = core.Backup{Head: header, WriteKV: func(w io.Writer) error {
		if err := streamKeys(w, keys, mvcc.Revision(ex.CompactRev)); err != nil {
			return fmt.Errorf("etcd database %s: %w", path, err)
		}
		return nil
	}}
	return b, done, nil
}

// streamKeys writes the key bucket as checkpoint content, reading it
// twice (mvcc.BucketWriter): up to the compaction point for where each
// key's newest record is, then from it on.
func streamKeys(w io.Writer, keys *bolt.Bucket, compactRev mvcc.Revision) error {
	lastMod, err := lastRevision(keys)
	if err != nil {
		return err
	}
	bw := mvcc.NewBucketWriter(w, compactRev, lastMod)
	c := keys.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		more, err := bw.NoteCold(k, v)
		if err != nil {
			return err
		}
		if !more {
			break
		}
	}
	if err := bw.WriteCold(keys.Get); err != nil {
		return err
	}
	for k, v := c.Seek(bw.HotStart()); k != nil; k, v = c.Next() {
		if err := bw.Add(k, v); err != nil {
			return err
		}
	}
	return bw.Close()
}

// statBackup reads etcd's database file at path, checked as ReadBackup
// checks it, for what the store restored from it reports.
func statBackup(path string) (core.BackupStatus, error) {
	db, err := openDB(path)
	if err != nil {
		return core.BackupStatus{}, err
	}
	defer db.Close()
	var st mvcc.BucketStatus
	err = db.View(func(tx *bolt.Tx) error {
		ex, _, err := checkedState(tx)
		if err != nil {
			return err
		}
		st, err = statKeys(tx.Bucket(bucketKey), mvcc.Revision(ex.CompactRev))
		return err
	})
	if err != nil {
		return core.BackupStatus{}, fmt.Errorf("etcd database %s: %w", path, err)
	}
	return core.BackupStatus{Revision: int64(st.Rev), CompactRevision: int64(st.CompactRev), Keys: st.Keys, Hash: st.Hash}, nil
}

// statKeys reads the key bucket in mvcc.BucketStat's passes.
func statKeys(keys *bolt.Bucket, compactRev mvcc.Revision) (mvcc.BucketStatus, error) {
	lastMod, err := lastRevision(keys)
	if err != nil {
		return mvcc.BucketStatus{}, err
	}
	bs := mvcc.NewBucketStat(compactRev, lastMod)
	if err := keys.ForEach(bs.Note); err != nil {
		return mvcc.BucketStatus{}, err
	}
	if err := bs.HashCold(keys.Get); err != nil {
		return mvcc.BucketStatus{}, err
	}
	c := keys.Cursor()
	for k, v := c.Seek(bs.HotStart()); k != nil; k, v = c.Next() {
		if err := bs.HashHot(k, v); err != nil {
			return mvcc.BucketStatus{}, err
		}
	}
	return bs.Status()
}

// openDB opens etcd's database file read-only.
func openDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("etcd database %s is locked: is its etcd member still running?", path)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrNotEtcd, err)
	}
	return db, nil
}

// checkedState checks the file's pages as etcdutl snapshot status does,
// then reads all but the key space and encodes it as a backup's head.
func checkedState(tx *bolt.Tx) (*core.ExchangeState, []byte, error) {
	var problems []string
	for err := range tx.Check() {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return nil, nil, fmt.Errorf("bolt integrity check failed: %s", strings.Join(problems, "; "))
	}
	ex, err := readState(tx)
	if err != nil {
		return nil, nil, err
	}
	header, err := core.BackupHeader(ex)
	return ex, header, err
}

// lastRevision is the main revision of the key bucket's last key, 0 if it
// has none.
func lastRevision(keys *bolt.Bucket) (mvcc.Revision, error) {
	k, _ := keys.Cursor().Last()
	switch {
	case k == nil:
		return 0, nil
	case len(k) < 8:
		return 0, fmt.Errorf("%w: key %x is not a revision", mvcc.ErrBadBucket, k)
	}
	return mvcc.Revision(binary.BigEndian.Uint64(k[:8])), nil
}

// readState reads all but the key space, checking the schema.
func readState(tx *bolt.Tx) (*core.ExchangeState, error) {
	for _, name := range [][]byte{bucketKey, bucketMeta} {
		if tx.Bucket(name) == nil {
			return nil, fmt.Errorf("%w: no %q bucket", ErrNotEtcd, name)
		}
	}
	get := func(bucket, key []byte) []byte {
		if b := tx.Bucket(bucket); b != nil {
			return b.Get(key)
		}
		return nil
	}
	if v := get(bucketMeta, metaStorageVersion); len(v) > 0 && !strings.HasPrefix(string(v), "3.") {
		return nil, fmt.Errorf("%w: storage version %q", ErrNotEtcd, v)
	}
	ex := &core.ExchangeState{
		ConfState:      &raftpb.ConfState{},
		ClusterVersion: string(get(bucketCluster, clusterVersionKey)),
		CompactRev:     -1,
		AuthEnabled:    len(get(bucketAuth, authEnabledKey)) == 1 && get(bucketAuth, authEnabledKey)[0] == 1,
		AuthRevision:   1, // as a new store's, when etcd has none
	}
	var err error
	u64 := func(v []byte, what string) uint64 {
		if len(v) != 8 {
			if err == nil {
				err = fmt.Errorf("%w: %s is %d bytes, not 8", ErrNotEtcd, what, len(v))
			}
			return 0
		}
		return binary.BigEndian.Uint64(v)
	}
	if v := get(bucketCluster, clusterDowngradeKey); v != nil {
		var d downgradeInfo
		if jerr := json.Unmarshal(v, &d); jerr != nil {
			return nil, fmt.Errorf("%w: downgrade job %q: %v", ErrNotEtcd, v, jerr)
		}
		if d.Enabled {
			if _, verr := semver.NewVersion(d.TargetVersion); verr != nil {
				return nil, fmt.Errorf("%w: downgrade job's target %q: %v", ErrNotEtcd, d.TargetVersion, verr)
			}
			ex.DowngradeTarget = d.TargetVersion
		}
	}
	if v := get(bucketMeta, metaConsistentIndex); v != nil {
		ex.Index = u64(v, "consistent_index")
	}
	if v := get(bucketMeta, metaTerm); v != nil {
		ex.Term = u64(v, "term")
	}
	if v := get(bucketAuth, authRevisionKey); v != nil {
		ex.AuthRevision = u64(v, "authRevision")
	}
	// etcd finishes at start-up a compaction it had only scheduled.
	for _, k := range [][]byte{metaFinishedCompact, metaScheduledCompact} {
		if v := get(bucketMeta, k); v != nil {
			if len(v) != 17 || v[8] != '_' {
				return nil, fmt.Errorf("%w: %s %x is not a revision", ErrNotEtcd, k, v)
			}
			ex.CompactRev = max(ex.CompactRev, int64(binary.BigEndian.Uint64(v)))
		}
	}
	if v := get(bucketMeta, metaConfState); v != nil {
		if jerr := json.Unmarshal(v, ex.ConfState); jerr != nil {
			return nil, fmt.Errorf("%w: confState: %v", ErrNotEtcd, jerr)
		}
	}
	if err != nil {
		return nil, err
	}
	each := func(bucket []byte, fn func(k, v []byte) error) {
		if b := tx.Bucket(bucket); b != nil && err == nil {
			if ferr := b.ForEach(fn); ferr != nil {
				err = fmt.Errorf("%w: bucket %s: %v", ErrNotEtcd, bucket, ferr)
			}
		}
	}
	each(bucketMembers, func(k, v []byte) error {
		var m Member
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		ex.Members = append(ex.Members, m.Core())
		return nil
	})
	each(bucketMembersRemoved, func(k, _ []byte) error {
		id, err := strconv.ParseUint(string(k), 16, 64)
		ex.Removed = append(ex.Removed, id)
		return err
	})
	each(bucketAlarm, func(k, _ []byte) error {
		a := &pb.AlarmMember{}
		ex.Alarms = append(ex.Alarms, a)
		return proto.Unmarshal(k, a)
	})
	each(bucketLease, func(_, v []byte) error {
		l, err := unmarshalLease(v)
		ex.Leases = append(ex.Leases, l)
		return err
	})
	each(bucketAuthUsers, func(_, v []byte) error {
		u := &authpb.User{}
		ex.Users = append(ex.Users, u)
		return proto.Unmarshal(v, u)
	})
	each(bucketAuthRoles, func(_, v []byte) error {
		r := &authpb.Role{}
		ex.Roles = append(ex.Roles, r)
		return proto.Unmarshal(v, r)
	})
	return ex, err
}

// unmarshalLease decodes a leasepb.Lease (see marshalLease).
func unmarshalLease(b []byte) (core.ExchangeLease, error) {
	var l core.ExchangeLease
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return l, protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.VarintType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return l, protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return l, protowire.ParseError(n)
		}
		b = b[n:]
		switch num {
		case leaseFieldID:
			l.ID = int64(v)
		case leaseFieldTTL:
			l.TTL = int64(v)
		case leaseFieldRemaining:
			l.RemainingTTL = int64(v)
		}
	}
	return l, nil
}
