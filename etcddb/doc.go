// Package etcddb reads and writes etcd 3.7's database file: the bolt file
// (go.etcd.io/bbolt, as etcd uses) that Maintenance.Snapshot streams and
// `etcdutl snapshot restore` turns into a data directory, with etcd's
// buckets and encodings (server/storage/schema in etcd's source). detcd
// keeps its own checkpoints and log as storage; this file is only for
// exchange with etcd: backups etcd's tools read, and a way in from etcd.
//
// The mapping between core's state and the buckets:
//
//	key             one entry per revision: 8-byte main, '_', 8-byte sub
//	                ('t' after it for a delete) -> mvccpb.KeyValue
//	meta            consistent_index, term (8 bytes big-endian), confState
//	                (JSON), storageVersion, scheduled/finishedCompactRev
//	lease           8-byte id -> leasepb.Lease {ID, TTL, RemainingTTL}
//	alarm           etcdserverpb.AlarmMember -> empty
//	cluster         clusterVersion -> "3.7.0"
//	members         hex id -> JSON member; members_removed: hex id -> "removed"
//	auth            authEnabled (1 byte), authRevision (8 bytes)
//	authUsers/Roles name -> authpb.User / authpb.Role
package etcddb
