package auth

import (
	"fmt"

	"go.etcd.io/etcd/api/v3/authpb"
	"google.golang.org/protobuf/proto"
)

// Users returns copies of the users, in name order, as etcd's authUsers
// bucket holds them.
func (s *Store) Users() []*authpb.User {
	out := make([]*authpb.User, 0, len(s.users))
	for _, name := range s.UserList() {
		out = append(out, proto.Clone(s.users[name]).(*authpb.User))
	}
	return out
}

// Roles returns copies of the roles, in name order.
func (s *Store) Roles() []*authpb.Role {
	out := make([]*authpb.Role, 0, len(s.roles))
	for _, name := range s.RoleList() {
		out = append(out, proto.Clone(s.roles[name]).(*authpb.Role))
	}
	return out
}

// FromParts builds a store from what etcd's auth buckets hold. The store
// takes the users and roles.
func FromParts(enabled bool, revision uint64, users []*authpb.User, roles []*authpb.Role) (*Store, error) {
	s := New()
	s.enabled, s.revision = enabled, revision
	for _, u := range users {
		if len(u.Name) == 0 {
			return nil, fmt.Errorf("%w: a user without a name", ErrBadEncoding)
		}
		s.users[string(u.Name)] = u
	}
	for _, r := range roles {
		if len(r.Name) == 0 {
			return nil, fmt.Errorf("%w: a role without a name", ErrBadEncoding)
		}
		s.roles[string(r.Name)] = r
	}
	return s, nil
}
