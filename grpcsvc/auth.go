package grpcsvc

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/auth"
)

// TokenFrom returns the auth token a client sent in its metadata, as
// clientv3 sends it ("token") or the JSON gateway forwards it
// ("authorization", where etcd drops a "Bearer " prefix), and whether it
// sent one at all: etcd takes an empty token for an invalid one, not for
// no token.
func TokenFrom(ctx context.Context) (string, bool) {
	// ValueFromIncomingContext reads the one key; FromIncomingContext
	// would copy all of the request's metadata, on every request.
	for _, k := range []string{"token", "authorization"} {
		if ts := metadata.ValueFromIncomingContext(ctx, k); len(ts) > 0 {
			return strings.TrimPrefix(ts[0], "Bearer "), true
		}
	}
	return "", false
}

// CertUserFrom returns the common name of the client's verified TLS
// certificate, which etcd takes as the user of a request without a token,
// or "".
func CertUserFrom(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return ""
	}
	for _, chain := range ti.State.VerifiedChains {
		if len(chain) > 0 && chain[0].Subject.CommonName != "" {
			return chain[0].Subject.CommonName
		}
	}
	return ""
}

type authServer struct {
	pb.UnimplementedAuthServer
	b Backend
}

// authOp sends one auth request through raft and unwraps its response.
func authOp[T any](ctx context.Context, b Backend, ir *pb.InternalRaftRequest) (T, error) {
	var zero T
	resp, err := b.Do(ctx, core.Request{Auth: ir})
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return zero, toGRPC(err)
	}
	t, ok := resp.Msg.(T)
	if !ok {
		return zero, toGRPC(errors.New("detcd: auth request answered with the wrong type"))
	}
	return t, nil
}

func (s *authServer) AuthEnable(ctx context.Context, r *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error) {
	return authOp[*pb.AuthEnableResponse](ctx, s.b, &pb.InternalRaftRequest{AuthEnable: r})
}

func (s *authServer) AuthDisable(ctx context.Context, r *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error) {
	return authOp[*pb.AuthDisableResponse](ctx, s.b, &pb.InternalRaftRequest{AuthDisable: r})
}

func (s *authServer) AuthStatus(ctx context.Context, r *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	return authOp[*pb.AuthStatusResponse](ctx, s.b, &pb.InternalRaftRequest{AuthStatus: r})
}

// authenticateTries bounds the retries when the auth store changed
// between checking the password and the token's proposal.
const authenticateTries = 3

// simpleTokenPrefixBytes is the random part of a simple token, letters
// as etcd's are; the applied index follows it.
const simpleTokenPrefixBytes = 16

// Authenticate checks the password off the loop (bcrypt is slow on
// purpose), then proposes the token, stamped with the auth revision the
// check was made at: if the store changed in between, check again.
func (s *authServer) Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	for range authenticateTries {
		resp, err := s.b.Do(ctx, core.Request{AuthLookup: &core.AuthLookupRequest{User: r.Name}})
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			return nil, toGRPC(err)
		}
		lk := resp.Lookup
		if !lk.Enabled {
			return nil, toGRPC(auth.ErrAuthNotEnabled)
		}
		if lk.NoPassword {
			// etcd does not map this error: it reaches clients as Unknown.
			return nil, status.Error(codes.Unknown, "auth: authentication failed, password was given for no password user")
		}
		if !lk.Found || bcrypt.CompareHashAndPassword(lk.Hash, []byte(r.Password)) != nil {
			return nil, toGRPC(auth.ErrAuthFailed)
		}
		ir := &pb.InternalRaftRequest{
			Header:       &pb.RequestHeader{AuthRevision: lk.Revision},
			Authenticate: &pb.InternalAuthenticateRequest{Name: r.Name, SimpleToken: tokenPrefix()},
		}
		out, err := authOp[*pb.AuthenticateResponse](ctx, s.b, ir)
		if errors.Is(err, toGRPC(auth.ErrAuthOldRevision)) {
			continue
		}
		if err != nil {
			return nil, err
		}
		// The apply checked that the store is still at lk.Revision.
		signed, err := s.b.SignToken(r.Name, lk.Revision)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		if signed != "" {
			out.Token = signed
		}
		return out, nil
	}
	return nil, toGRPC(auth.ErrAuthOldRevision)
}

func tokenPrefix() string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, simpleTokenPrefixBytes)
	rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// hash is a password's bcrypt hash, made here and not in core.
func (s *authServer) hash(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.b.BcryptCost())
	if err != nil {
		return "", toGRPC(err)
	}
	return string(h), nil
}

func (s *authServer) UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	if r.Name == "" {
		return nil, toGRPC(auth.ErrUserEmpty)
	}
	req := &pb.AuthUserAddRequest{Name: r.Name, Options: r.Options, HashedPassword: r.HashedPassword}
	if !r.GetOptions().GetNoPassword() && req.HashedPassword == "" {
		h, err := s.hash(r.Password)
		if err != nil {
			return nil, err
		}
		req.HashedPassword = h
	}
	return authOp[*pb.AuthUserAddResponse](ctx, s.b, &pb.InternalRaftRequest{AuthUserAdd: req})
}

func (s *authServer) UserChangePassword(ctx context.Context, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	req := &pb.AuthUserChangePasswordRequest{Name: r.Name, HashedPassword: r.HashedPassword}
	if req.HashedPassword == "" {
		h, err := s.hash(r.Password)
		if err != nil {
			return nil, err
		}
		req.HashedPassword = h
	}
	return authOp[*pb.AuthUserChangePasswordResponse](ctx, s.b, &pb.InternalRaftRequest{AuthUserChangePassword: req})
}

func (s *authServer) UserGet(ctx context.Context, r *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error) {
	return authOp[*pb.AuthUserGetResponse](ctx, s.b, &pb.InternalRaftRequest{AuthUserGet: r})
}

func (s *authServer) UserList(ctx context.Context, r *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error) {
	return authOp[*pb.AuthUserListResponse](ctx, s.b, &pb.InternalRaftRequest{AuthUserList: r})
}

func (s *authServer) UserDelete(ctx context.Context, r *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error) {
	return authOp[*pb.AuthUserDeleteResponse](ctx, s.b, &pb.InternalRaftRequest{AuthUserDelete: r})
}

func (s *authServer) UserGrantRole(ctx context.Context, r *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error) {
	return authOp[*pb.AuthUserGrantRoleResponse](ctx, s.b, &pb.InternalRaftRequest{AuthUserGrantRole: r})
}

func (s *authServer) UserRevokeRole(ctx context.Context, r *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error) {
	return authOp[*pb.AuthUserRevokeRoleResponse](ctx, s.b, &pb.InternalRaftRequest{AuthUserRevokeRole: r})
}

func (s *authServer) RoleAdd(ctx context.Context, r *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error) {
	return authOp[*pb.AuthRoleAddResponse](ctx, s.b, &pb.InternalRaftRequest{AuthRoleAdd: r})
}

func (s *authServer) RoleGet(ctx context.Context, r *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error) {
	return authOp[*pb.AuthRoleGetResponse](ctx, s.b, &pb.InternalRaftRequest{AuthRoleGet: r})
}

func (s *authServer) RoleList(ctx context.Context, r *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error) {
	return authOp[*pb.AuthRoleListResponse](ctx, s.b, &pb.InternalRaftRequest{AuthRoleList: r})
}

func (s *authServer) RoleDelete(ctx context.Context, r *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error) {
	return authOp[*pb.AuthRoleDeleteResponse](ctx, s.b, &pb.InternalRaftRequest{AuthRoleDelete: r})
}

func (s *authServer) RoleGrantPermission(ctx context.Context, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error) {
	return authOp[*pb.AuthRoleGrantPermissionResponse](ctx, s.b, &pb.InternalRaftRequest{AuthRoleGrantPermission: r})
}

func (s *authServer) RoleRevokePermission(ctx context.Context, r *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error) {
	return authOp[*pb.AuthRoleRevokePermissionResponse](ctx, s.b, &pb.InternalRaftRequest{AuthRoleRevokePermission: r})
}
