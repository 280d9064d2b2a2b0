package etcddb

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
)

// Bucket and key names of etcd 3.7's schema (server/storage/schema).
var (
	bucketKey            = []byte("key")
	bucketMeta           = []byte("meta")
	bucketLease          = []byte("lease")
	bucketAlarm          = []byte("alarm")
	bucketCluster        = []byte("cluster")
	bucketMembers        = []byte("members")
	bucketMembersRemoved = []byte("members_removed")
	bucketAuth           = []byte("auth")
	bucketAuthUsers      = []byte("authUsers")
	bucketAuthRoles      = []byte("authRoles")

	allBuckets = [][]byte{bucketKey, bucketMeta, bucketLease, bucketAlarm, bucketCluster,
		bucketMembers, bucketMembersRemoved, bucketAuth, bucketAuthUsers, bucketAuthRoles}

	metaConsistentIndex  = []byte("consistent_index")
	metaTerm             = []byte("term")
	metaConfState        = []byte("confState")
	metaScheduledCompact = []byte("scheduledCompactRev")
	metaFinishedCompact  = []byte("finishedCompactRev")
	metaStorageVersion   = []byte("storageVersion")
	clusterVersionKey    = []byte("clusterVersion")
	clusterDowngradeKey  = []byte("downgrade")
	authEnabledKey       = []byte("authEnabled")
	authRevisionKey      = []byte("authRevision")
)

// StorageVersion is the schema version the files detcd writes declare:
// etcd 3.7's, major.minor.0 as etcd stores it.
const StorageVersion = "3.7.0"

// txKeysMax and txBytesMax bound a bolt transaction of Write: bolt keeps
// a transaction's dirty pages in memory until it commits (and Write a
// copy of its values), so one transaction for the whole key space would
// hold a second and a third copy of it. The byte bound matters for large
// values: 10,000 values of 64 KiB are 640 MiB.
const (
	txKeysMax  = 10000
	txBytesMax = 64 << 20
)

// keyBucketFill is the fill of the key bucket's pages. Its keys are
// written in order, so pages need little room for inserts; etcd uses the
// same for its sequential puts.
const keyBucketFill = 0.9

// Write creates etcd's database file at path (which must not exist) with
// the state ex and the key space kv.
func Write(path string, ex *core.ExchangeState, kv *mvcc.View) (err error) {
	// The file is written once and streamed; a crash loses nothing that a
	// new snapshot would not give, so it is not synced.
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true, NoGrowSync: true, NoFreelistSync: true})
	if err != nil {
		return fmt.Errorf("etcddb: %w", err)
	}
	defer func() {
		if cerr := db.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("etcddb: %w", cerr)
		}
	}()
	if err := db.Update(func(tx *bolt.Tx) error { return writeState(tx, ex) }); err != nil {
		return fmt.Errorf("etcddb: %w", err)
	}
	if _, err := writeKeys(db, kv, txKeysMax, txBytesMax); err != nil {
		return fmt.Errorf("etcddb: key bucket: %w", err)
	}
	return nil
}

// writeKeys fills the key bucket in transactions of at most keysMax
// entries and about bytesMax bytes of values; it returns how many it
// committed.
func writeKeys(db *bolt.DB, kv *mvcc.View, keysMax, bytesMax int) (txs int, err error) {
	var tx *bolt.Tx
	var b *bolt.Bucket
	begin := func() (err error) {
		if tx, err = db.Begin(true); err != nil {
			return err
		}
		b = tx.Bucket(bucketKey)
		b.FillPercent = keyBucketFill
		return nil
	}
	if err := begin(); err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }() // after a commit, a no-op
	n, bytes := 0, 0
	var values arena
	err = kv.ExportBucket(func(k, v []byte) error {
		if n == keysMax || bytes >= bytesMax {
			if err := tx.Commit(); err != nil {
				return err
			}
			txs++
			if err := begin(); err != nil {
				return err
			}
			n, bytes = 0, 0
			values.reset()
		}
		n++
		bytes += len(k) + len(v)
		// bolt copies the key but keeps the value until the commit.
		return b.Put(k, values.copy(v))
	})
	if err != nil {
		return txs, err
	}
	if err := tx.Commit(); err != nil {
		return txs, err
	}
	return txs + 1, nil
}

// arenaBlockBytes is the size of an arena's blocks.
const arenaBlockBytes = 1 << 20

// arena keeps copies of byte slices in large blocks, so that a
// transaction's values cost a few allocations instead of one each. reset
// reuses the blocks for the next transaction: one that has committed no
// longer refers to its values, and a store of gigabytes would otherwise
// leave that much garbage behind, which a heap the size of the store
// pays for in collections.
type arena struct {
	blocks [][]byte
	// next is the block copies go to.
	next int
}

func (a *arena) copy(b []byte) []byte {
	if len(b) > arenaBlockBytes {
		return append([]byte(nil), b...)
	}
	for ; a.next < len(a.blocks); a.next++ {
		if blk := a.blocks[a.next]; cap(blk)-len(blk) >= len(b) {
			break
		}
	}
	if a.next == len(a.blocks) {
		a.blocks = append(a.blocks, make([]byte, 0, arenaBlockBytes))
	}
	blk := a.blocks[a.next]
	start := len(blk)
	blk = append(blk, b...)
	a.blocks[a.next] = blk
	return blk[start:len(blk):len(blk)]
}

// reset empties the blocks for reuse: the copies made so far must no
// longer be used.
func (a *arena) reset() {
	for i := range a.blocks {
		a.blocks[i] = a.blocks[i][:0]
	}
	a.next = 0
}

// writeState creates every bucket and writes all but the key space.
func writeState(tx *bolt.Tx, ex *core.ExchangeState) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	var err error
	put := func(bucket, k, v []byte) {
		if err == nil {
			if err = tx.Bucket(bucket).Put(k, v); err != nil {
				err = fmt.Errorf("bucket %s: %w", bucket, err)
			}
		}
	}
	putJSON := func(bucket, k []byte, v any) {
		b, jerr := json.Marshal(v)
		if err == nil && jerr != nil {
			err = jerr
		}
		put(bucket, k, b)
	}
	putProto := func(bucket, k []byte, m proto.Message) {
		b, perr := proto.Marshal(m)
		if err == nil && perr != nil {
			err = perr
		}
		put(bucket, k, b)
	}
	put(bucketMeta, metaConsistentIndex, be64(ex.Index))
	put(bucketMeta, metaTerm, be64(ex.Term))
	putJSON(bucketMeta, metaConfState, ex.ConfState)
	put(bucketMeta, metaStorageVersion, []byte(StorageVersion))
	if ex.CompactRev > 0 {
		// etcd records a compaction as scheduled, then as finished.
		put(bucketMeta, metaScheduledCompact, revKey(ex.CompactRev))
		put(bucketMeta, metaFinishedCompact, revKey(ex.CompactRev))
	}
	put(bucketAuth, authRevisionKey, be64(ex.AuthRevision))
	if ex.AuthEnabled {
		// etcd writes the flag when auth is first enabled.
		put(bucketAuth, authEnabledKey, []byte{1})
	}
	if ex.ClusterVersion != "" {
		put(bucketCluster, clusterVersionKey, []byte(ex.ClusterVersion))
	}
	if ex.DowngradeTarget != "" {
		// etcd writes the job when it is enabled (and a disabled one
		// when it ends, which reads back as none).
		putJSON(bucketCluster, clusterDowngradeKey, downgradeInfo{TargetVersion: ex.DowngradeTarget, Enabled: true})
	}
	for _, m := range ex.Members {
		putJSON(bucketMembers, memberKey(m.ID), FromMember(m))
	}
	for _, id := range ex.Removed {
		put(bucketMembersRemoved, memberKey(id), []byte("removed"))
	}
	for _, a := range ex.Alarms {
		k, perr := proto.Marshal(a)
		if err == nil && perr != nil {
			err = perr
		}
		put(bucketAlarm, k, nil)
	}
	for _, l := range ex.Leases {
		put(bucketLease, be64(uint64(l.ID)), marshalLease(l))
	}
	for _, u := range ex.Users {
		putProto(bucketAuthUsers, u.Name, u)
	}
	for _, r := range ex.Roles {
		putProto(bucketAuthRoles, r.Name, r)
	}
	return err
}

// Member is a member as etcd writes it in JSON, in its members bucket
// and on its peers' GET /members (etcd's membership.Member, with its
// field order).
type Member struct {
	ID         uint64   `json:"id"`
	PeerURLs   []string `json:"peerURLs"`
	IsLearner  bool     `json:"isLearner,omitempty"`
	Name       string   `json:"name,omitempty"`
	ClientURLs []string `json:"clientURLs,omitempty"`
}

// FromMember is m as etcd writes it.
func FromMember(m core.Member) Member {
	return Member{ID: m.ID, PeerURLs: m.PeerURLs, IsLearner: m.IsLearner, Name: m.Name, ClientURLs: m.ClientURLs}
}

// Core is the member as core holds it.
func (m Member) Core() core.Member {
	return core.Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner}
}

// memberKey is a member's key in etcd's members buckets: its id in hex.
func memberKey(id uint64) []byte { return []byte(strconv.FormatUint(id, 16)) }

// The lease bucket's values are leasepb.Lease: ID = 1, TTL = 2,
// RemainingTTL = 3, all int64. leasepb lives in etcd's server module, which
// detcd does not depend on; the three varints are encoded here.
const (
	leaseFieldID        protowire.Number = 1
	leaseFieldTTL       protowire.Number = 2
	leaseFieldRemaining protowire.Number = 3
)

func marshalLease(l core.ExchangeLease) []byte {
	var b []byte
	for _, f := range []struct {
		num protowire.Number
		v   int64
	}{{leaseFieldID, l.ID}, {leaseFieldTTL, l.TTL}, {leaseFieldRemaining, l.RemainingTTL}} {
		if f.v != 0 { // proto3: zero values are not encoded
			b = protowire.AppendTag(b, f.num, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(f.v))
		}
	}
	return b
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// revKey encodes a main revision as etcd's meta bucket holds compaction
// points: as a key bucket key with sub revision 0.
func revKey(main int64) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(main))
	b = append(b, '_')
	return binary.BigEndian.AppendUint64(b, 0)
}

// downgradeInfo is etcd's record of a downgrade job in its cluster
// bucket.
type downgradeInfo struct {
	TargetVersion string `json:"target-version"`
	Enabled       bool   `json:"enabled"`
}
