package grpcsvc

import (
	"context"
	"net/url"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
)

type clusterServer struct {
	pb.UnimplementedClusterServer
	b Backend
}

// checkURLs validates peer URLs as etcd does before it changes anything.
func checkURLs(us []string) error {
	if len(us) == 0 {
		return core.ErrMemberBadURLs
	}
	for _, s := range us {
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "unix" && u.Scheme != "unixs" || u.Host == "" || u.Path != "" && u.Path != "/" {
			return core.ErrMemberBadURLs
		}
	}
	return nil
}

func (s *clusterServer) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	if err := checkURLs(r.PeerURLs); err != nil {
		return nil, toGRPC(err)
	}
	return do[*pb.MemberAddResponse](ctx, s.b, core.Request{MemberAdd: r, NewMemberID: s.b.NewMemberID(r.PeerURLs)})
}

func (s *clusterServer) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	return do[*pb.MemberRemoveResponse](ctx, s.b, core.Request{MemberRemove: r})
}

func (s *clusterServer) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	if err := checkURLs(r.PeerURLs); err != nil {
		return nil, toGRPC(err)
	}
	return do[*pb.MemberUpdateResponse](ctx, s.b, core.Request{MemberUpdate: r})
}

func (s *clusterServer) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	return do[*pb.MemberPromoteResponse](ctx, s.b, core.Request{MemberPromote: r})
}

func (s *clusterServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	return do[*pb.MemberListResponse](ctx, s.b, core.Request{MemberList: r})
}
