package grpcsvc

import (
	"context"
	"net"
	"net/url"
	"slices"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
)

type clusterServer struct {
	pb.UnimplementedClusterServer
	b Backend
}

// peerURLs checks peer URLs as etcd's types.NewURLs does: http and https
// ones need host:port and no path (a member without a port is one no peer
// could reach); unix and unixs ones pass. It returns them as etcd keeps a
// new member's: trimmed, normalized and sorted.
func peerURLs(us []string) ([]string, error) {
	if len(us) == 0 {
		return nil, core.ErrMemberBadURLs
	}
	out := make([]string, len(us))
	for i, s := range us {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil {
			return nil, core.ErrMemberBadURLs
		}
		switch u.Scheme {
		case "http", "https":
			if _, _, err := net.SplitHostPort(u.Host); err != nil || u.Path != "" {
				return nil, core.ErrMemberBadURLs
			}
		case "unix", "unixs":
		default:
			return nil, core.ErrMemberBadURLs
		}
		out[i] = u.String()
	}
	slices.Sort(out)
	return out, nil
}

func (s *clusterServer) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	urls, err := peerURLs(r.PeerURLs)
	if err != nil {
		return nil, toGRPC(err)
	}
	r = &pb.MemberAddRequest{PeerURLs: urls, IsLearner: r.IsLearner}
	return do[*pb.MemberAddResponse](ctx, s.b, core.Request{MemberAdd: r, NewMemberID: s.b.NewMemberID(urls)})
}

func (s *clusterServer) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	return do[*pb.MemberRemoveResponse](ctx, s.b, core.Request{MemberRemove: r})
}

func (s *clusterServer) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	// etcd checks these only when its transport uses them, and panics on
	// bad ones; detcd refuses them as MemberAdd does, and keeps good ones
	// as given, as etcd does.
	if _, err := peerURLs(r.PeerURLs); err != nil {
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
