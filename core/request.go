package core

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core/mvcc"
)

// RequestID is chosen by the driver and ties a response to its request.
// IDs with the top bit set are the node's own (requests forwarded by
// peers) and must not be used by drivers.
type RequestID uint64

// peerRequestBit marks the node's own request ids.
const peerRequestBit = RequestID(1) << 63

// Request is a client request to one member. Exactly one field beside ID
// is set.
type Request struct {
	ID RequestID
	// Token is the client's auth token, "" for none. With auth enabled,
	// every request but those etcd leaves open needs a live one.
	Token string
	// TokenUser and TokenRevision, with TokenUser set, are what a token
	// the driver checked itself (a JWT) says: its user and the auth
	// revision it was issued at.
	TokenUser     string
	TokenRevision uint64
	// CertUser is the common name of the client's verified TLS
	// certificate: with auth on, etcd takes it as the user of a request
	// without a token.
	CertUser string
	// Auth is one of etcd's auth requests: exactly one Auth* field of an
	// InternalRaftRequest, or Authenticate with the token prefix the
	// driver chose and, in its header's AuthRevision, the revision of
	// the store the driver checked the password at (AuthLookup). Passwords
	// come hashed: core never runs bcrypt.
	Auth *pb.InternalRaftRequest
	// AuthLookup asks for what checking a user's password needs
	// (Response.Lookup).
	AuthLookup *AuthLookupRequest

	Range       *pb.RangeRequest
	Put         *pb.PutRequest
	DeleteRange *pb.DeleteRangeRequest
	Txn         *pb.TxnRequest
	Compaction  *pb.CompactionRequest
	Alarm       *pb.AlarmRequest
	// Leases. A keep-alive is one request per renewal; the driver keeps
	// the stream.
	LeaseGrant      *pb.LeaseGrantRequest
	LeaseRevoke     *pb.LeaseRevokeRequest
	LeaseKeepAlive  *pb.LeaseKeepAliveRequest
	LeaseTimeToLive *pb.LeaseTimeToLiveRequest
	LeaseLeases     bool
	// Status asks for the member's status (Maintenance.Status).
	Status bool
	// Membership (the Cluster service). MemberAdd needs NewMemberID: the
	// driver chooses the id (etcd hashes the peer URLs with the time).
	MemberAdd     *pb.MemberAddRequest
	NewMemberID   uint64
	MemberRemove  *pb.MemberRemoveRequest
	MemberUpdate  *pb.MemberUpdateRequest
	MemberPromote *pb.MemberPromoteRequest
	MemberList    *pb.MemberListRequest
	MoveLeader    *pb.MoveLeaderRequest
	// HandOff asks a leader about to stop to move its leadership to the
	// voter that can take it soonest, as etcd's Stop does; it answers (a
	// MoveLeaderResponse) once another member leads, or at once where
	// there is nothing to hand: a follower, or no other voter in contact.
	HandOff bool
	// Downgrade validates, enables or cancels a downgrade job
	// (Maintenance.Downgrade).
	Downgrade *pb.DowngradeRequest
	// Defragment returns the key space's garbage memory; it answers when
	// done, with a DefragmentResponse.
	Defragment bool
	// Snapshot asks for a view that can be hashed or dumped
	// (Maintenance.Hash, HashKV): served at once, not linearizable, as etcd
	// serves them.
	Snapshot bool
	// Backup asks for the whole state as a checkpoint would hold it
	// (Maintenance.Snapshot): served at once from the applied state.
	Backup bool
	// WhoAmI asks who the request's token names (Response.Caller), and
	// uses the token as any request does (a simple token is renewed):
	// drivers cache the answer to check reads off the loop.
	WhoAmI bool
	// ReadIndex asks to be told when a linearizable read may be served,
	// with a view at least that fresh: drivers that read from views use it
	// instead of sending ranges through the loop.
	ReadIndex bool

	// Set by authorize: who makes the request, at which auth revision.
	user    string
	authRev uint64
}

// AuthLookupRequest names the user to look up.
type AuthLookupRequest struct{ User string }

// Response answers the request with the same ID.
type Response struct {
	ID  RequestID
	Err error
	// Msg is the etcdserverpb response (RangeResponse, PutResponse, ...)
	// with its header filled in.
	Msg proto.Message
	// View is set for ReadIndex and Snapshot requests.
	View *mvcc.View
	// Header is set for ReadIndex and Snapshot requests: what to put in the
	// response the driver builds from View.
	Header *pb.ResponseHeader
	// Hashes, for Snapshot requests, are the hashes kept from the last
	// compactions: etcd answers HashKV at such a revision with them.
	Hashes []mvcc.KVHash
	// Backup, for Backup requests, writes the state off the loop.
	Backup *Checkpoint
	// Lookup answers AuthLookup requests.
	Lookup *AuthLookup
	// Caller answers WhoAmI: the token's user (none with auth off) and
	// the auth revision it was checked at. The answer holds while the
	// revision does, until tick CallerUntilTick: half the token's
	// lifetime, so that a driver that reuses it comes back to renew the
	// token before it lapses.
	Caller          *Caller
	CallerUntilTick int64
	// AuthEnabled, for ReadIndex requests, says whether auth was on when
	// View was taken: a driver that found it off when the read arrived
	// must then check the user's permissions before it serves from View,
	// as etcd checks them once the read index is applied.
	AuthEnabled bool
}
