package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

var (
	marshalJSON   = protojson.MarshalOptions{UseProtoNames: true}
	unmarshalJSON = protojson.UnmarshalOptions{DiscardUnknown: true}
)

// New serves the gateway's routes through conn, a connection to the
// member's own gRPC server; bodies over bodyBytesMax are refused.
func New(conn *grpc.ClientConn, bodyBytesMax int64) http.Handler {
	mux := http.NewServeMux()
	for path, h := range routes(conn) {
		mux.Handle(path, post(limitBody(h, bodyBytesMax)))
	}
	mux.HandleFunc("/v3/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, status.New(codes.NotFound, http.StatusText(http.StatusNotFound)))
	})
	return mux
}

func routes(conn *grpc.ClientConn) map[string]http.Handler {
	kv, lease, cl := pb.NewKVClient(conn), pb.NewLeaseClient(conn), pb.NewClusterClient(conn)
	m, au := pb.NewMaintenanceClient(conn), pb.NewAuthClient(conn)
	lock, el := v3lockpb.NewLockClient(conn), v3electionpb.NewElectionClient(conn)
	r := map[string]http.Handler{
		"/v3/kv/range":                        unary(kv.Range),
		"/v3/kv/put":                          unary(kv.Put),
		"/v3/kv/deleterange":                  unary(kv.DeleteRange),
		"/v3/kv/txn":                          unary(kv.Txn),
		"/v3/kv/compaction":                   unary(kv.Compact),
		"/v3/lease/grant":                     unary(lease.LeaseGrant),
		"/v3/lease/revoke":                    unary(lease.LeaseRevoke),
		"/v3/kv/lease/revoke":                 unary(lease.LeaseRevoke),
		"/v3/lease/timetolive":                unary(lease.LeaseTimeToLive),
		"/v3/kv/lease/timetolive":             unary(lease.LeaseTimeToLive),
		"/v3/lease/leases":                    unary(lease.LeaseLeases),
		"/v3/kv/lease/leases":                 unary(lease.LeaseLeases),
		"/v3/cluster/member/add":              unary(cl.MemberAdd),
		"/v3/cluster/member/remove":           unary(cl.MemberRemove),
		"/v3/cluster/member/update":           unary(cl.MemberUpdate),
		"/v3/cluster/member/list":             unary(cl.MemberList),
		"/v3/cluster/member/promote":          unary(cl.MemberPromote),
		"/v3/maintenance/alarm":               unary(m.Alarm),
		"/v3/maintenance/status":              unary(m.Status),
		"/v3/maintenance/defragment":          unary(m.Defragment),
		"/v3/maintenance/hash":                unary(m.Hash),
		"/v3/maintenance/hashkv":              unary(m.HashKV),
		"/v3/maintenance/transfer-leadership": unary(m.MoveLeader),
		"/v3/maintenance/downgrade":           unary(m.Downgrade),
		"/v3/auth/enable":                     unary(au.AuthEnable),
		"/v3/auth/disable":                    unary(au.AuthDisable),
		"/v3/auth/status":                     unary(au.AuthStatus),
		"/v3/auth/authenticate":               unary(au.Authenticate),
		"/v3/auth/user/add":                   unary(au.UserAdd),
		"/v3/auth/user/get":                   unary(au.UserGet),
		"/v3/auth/user/list":                  unary(au.UserList),
		"/v3/auth/user/delete":                unary(au.UserDelete),
		"/v3/auth/user/changepw":              unary(au.UserChangePassword),
		"/v3/auth/user/grant":                 unary(au.UserGrantRole),
		"/v3/auth/user/revoke":                unary(au.UserRevokeRole),
		"/v3/auth/role/add":                   unary(au.RoleAdd),
		"/v3/auth/role/get":                   unary(au.RoleGet),
		"/v3/auth/role/list":                  unary(au.RoleList),
		"/v3/auth/role/delete":                unary(au.RoleDelete),
		"/v3/auth/role/grant":                 unary(au.RoleGrantPermission),
		"/v3/auth/role/revoke":                unary(au.RoleRevokePermission),
		"/v3/lock/lock":                       unary(lock.Lock),
		"/v3/lock/unlock":                     unary(lock.Unlock),
		"/v3/election/campaign":               unary(el.Campaign),
		"/v3/election/proclaim":               unary(el.Proclaim),
		"/v3/election/leader":                 unary(el.Leader),
		"/v3/election/resign":                 unary(el.Resign),
		"/v3/election/observe":                serverStream(el.Observe),
		"/v3/maintenance/snapshot":            serverStream(m.Snapshot),
		"/v3/watch": bidi(func(ctx context.Context) (grpc.BidiStreamingClient[pb.WatchRequest, pb.WatchResponse], error) {
			return pb.NewWatchClient(conn).Watch(ctx)
		}),
		"/v3/lease/keepalive": bidi(func(ctx context.Context) (grpc.BidiStreamingClient[pb.LeaseKeepAliveRequest, pb.LeaseKeepAliveResponse], error) {
			return lease.LeaseKeepAlive(ctx)
		}),
	}
	return r
}

// post answers other methods as grpc-gateway does.
func post(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			// grpc-gateway's answer, with the status of Unimplemented.
			writeError(w, httpStatus(codes.Unimplemented), status.New(codes.Unimplemented, http.StatusText(http.StatusMethodNotAllowed)))
			return
		}
		h.ServeHTTP(w, r)
	})
}

func limitBody(h http.Handler, max int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, max)
		h.ServeHTTP(w, r)
	})
}

// outgoing carries the client's token, from the Authorization header, as
// grpc-gateway forwards it.
func outgoing(r *http.Request) context.Context {
	ctx := r.Context()
	if a := r.Header.Get("Authorization"); a != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", a)
	}
	return ctx
}

// pbMsg is a pointer to a generated message type.
type pbMsg[T any] interface {
	*T
	proto.Message
}

func unary[Req any, Resp proto.Message, PReq pbMsg[Req]](call func(context.Context, PReq, ...grpc.CallOption) (Resp, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := PReq(new(Req))
		if err := decode(json.NewDecoder(r.Body), req); err != nil && !errors.Is(err, io.EOF) {
			writeError(w, http.StatusBadRequest, status.New(codes.InvalidArgument, err.Error()))
			return
		}
		resp, err := call(outgoing(r), req)
		if err != nil {
			st := status.Convert(err)
			writeError(w, httpStatus(st.Code()), st)
			return
		}
		b, err := marshalJSON.Marshal(resp)
		if err != nil {
			writeError(w, http.StatusInternalServerError, status.New(codes.Internal, err.Error()))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
}

// decode reads the next JSON value of a body into m.
func decode(d *json.Decoder, m proto.Message) error {
	var raw json.RawMessage
	if err := d.Decode(&raw); err != nil {
		return err
	}
	return unmarshalJSON.Unmarshal(raw, m)
}
