package auth

import (
	"bytes"
	"slices"
	"sort"

	"go.etcd.io/etcd/api/v3/authpb"
	"google.golang.org/protobuf/proto"
)

// Root is the name of the user and of the role that may do anything.
const Root = "root"

// Store is the replicated auth state.
type Store struct {
	enabled  bool
	revision uint64
	users    map[string]*authpb.User
	roles    map[string]*authpb.Role
	// perms caches Perms until the store changes; every change goes
	// through bump or Enable, which drop it.
	perms *Perms
}

// New is an empty store with auth disabled, at revision 1 (so that a
// request stamped with revision 0 is recognizably not a client's).
func New() *Store {
	return &Store{revision: 1, users: map[string]*authpb.User{}, roles: map[string]*authpb.Role{}}
}

// Enabled reports whether auth is on.
func (s *Store) Enabled() bool { return s.enabled }

// Revision counts the changes to the store.
func (s *Store) Revision() uint64 { return s.revision }

func (s *Store) bump() { s.revision++; s.perms = nil }

// Enable turns auth on; the root user must exist and have the root role.
func (s *Store) Enable() error {
	if s.enabled {
		return nil
	}
	u, ok := s.users[Root]
	if !ok {
		return ErrRootUserNotExist
	}
	if !hasRole(u, Root) {
		return ErrRootRoleNotExist
	}
	// As etcd's: enabling leaves the revision alone (disabling bumps it).
	s.enabled = true
	s.perms = nil
	return nil
}

// Disable turns auth off.
func (s *Store) Disable() {
	if s.enabled {
		s.enabled = false
		s.bump()
	}
}

// UserAdd adds a user with a bcrypt hash of its password (nil with
// noPassword: the user cannot authenticate with a password).
func (s *Store) UserAdd(name string, hash []byte, noPassword bool) error {
	if name == "" {
		return ErrUserEmpty
	}
	if _, ok := s.users[name]; ok {
		return ErrUserAlreadyExist
	}
	u := &authpb.User{Name: []byte(name), Password: hash}
	if noPassword {
		u.Options = &authpb.UserAddOptions{NoPassword: true}
	}
	s.users[name] = u
	s.bump()
	return nil
}

// UserDelete removes a user; root cannot go while auth is on.
func (s *Store) UserDelete(name string) error {
	if s.enabled && name == Root {
		return ErrInvalidAuthMgmt
	}
	if _, ok := s.users[name]; !ok {
		return ErrUserNotFound
	}
	delete(s.users, name)
	s.bump()
	return nil
}

// UserChangePassword replaces a user's password hash.
func (s *Store) UserChangePassword(name string, hash []byte) error {
	u, ok := s.users[name]
	if !ok {
		return ErrUserNotFound
	}
	u.Password = hash
	s.bump()
	return nil
}

// Password returns a user's hash, for the driver to check a password
// against; found is false for an unknown user, noPassword true for one
// added without a password (who cannot authenticate with one).
func (s *Store) Password(name string) (hash []byte, found, noPassword bool) {
	u, ok := s.users[name]
	if !ok {
		return nil, false, false
	}
	return u.Password, true, u.GetOptions().GetNoPassword()
}

// UserGrantRole grants a role (root need not exist as a role); granting
// one the user has changes nothing, as in etcd.
func (s *Store) UserGrantRole(name, role string) error {
	u, ok := s.users[name]
	if !ok {
		return ErrUserNotFound
	}
	if _, ok := s.roles[role]; !ok && role != Root {
		return ErrRoleNotFound
	}
	i, found := slices.BinarySearch(u.Roles, role)
	if found {
		return nil
	}
	u.Roles = slices.Insert(u.Roles, i, role)
	s.bump()
	return nil
}

// UserRevokeRole takes a role away; root keeps root while auth is on.
func (s *Store) UserRevokeRole(name, role string) error {
	if s.enabled && name == Root && role == Root {
		return ErrInvalidAuthMgmt
	}
	u, ok := s.users[name]
	if !ok {
		return ErrUserNotFound
	}
	i, found := slices.BinarySearch(u.Roles, role)
	if !found {
		return ErrRoleNotGranted
	}
	u.Roles = slices.Delete(u.Roles, i, i+1)
	s.bump()
	return nil
}

// UserGet returns a user's roles, sorted.
func (s *Store) UserGet(name string) ([]string, error) {
	u, ok := s.users[name]
	if !ok {
		return nil, ErrUserNotFound
	}
	return slices.Clone(u.Roles), nil
}

// UserList returns the user names, sorted.
func (s *Store) UserList() []string { return sortedKeys(s.users) }

// RoleAdd adds a role without permissions.
func (s *Store) RoleAdd(name string) error {
	if name == "" {
		return ErrRoleEmpty
	}
	if _, ok := s.roles[name]; ok {
		return ErrRoleAlreadyExist
	}
	s.roles[name] = &authpb.Role{Name: []byte(name)}
	s.bump()
	return nil
}

// RoleDelete removes a role and revokes it from every user; the root
// role cannot go while auth is on.
func (s *Store) RoleDelete(name string) error {
	if s.enabled && name == Root {
		return ErrInvalidAuthMgmt
	}
	if _, ok := s.roles[name]; !ok {
		return ErrRoleNotFound
	}
	delete(s.roles, name)
	for _, u := range s.users { //core:maporder-ok each user changes alone; nothing is emitted
		u.Roles = slices.DeleteFunc(u.Roles, func(r string) bool { return r == name })
	}
	s.bump()
	return nil
}

// RoleGet returns a role's permissions, sorted by key. As etcd, it shows
// root's as the one it implies, read-write on every key, whatever the
// role was granted.
func (s *Store) RoleGet(name string) ([]*authpb.Permission, error) {
	r, ok := s.roles[name]
	if !ok {
		return nil, ErrRoleNotFound
	}
	if name == Root {
		return []*authpb.Permission{{PermType: authpb.Permission_READWRITE, Key: []byte{}, RangeEnd: []byte{0}}}, nil
	}
	out := make([]*authpb.Permission, len(r.KeyPermission))
	for i, p := range r.KeyPermission {
		out[i] = proto.Clone(p).(*authpb.Permission)
	}
	return out, nil
}

// RoleList returns the role names, sorted.
func (s *Store) RoleList() []string { return sortedKeys(s.roles) }

// RoleGrantPermission grants a permission on a key or range; one on the
// same key and range end replaces its type.
func (s *Store) RoleGrantPermission(name string, p *authpb.Permission) error {
	r, ok := s.roles[name]
	if !ok {
		return ErrRoleNotFound
	}
	if p == nil {
		return ErrPermissionNotGiven
	}
	p = proto.Clone(p).(*authpb.Permission)
	i := slices.IndexFunc(r.KeyPermission, func(q *authpb.Permission) bool {
		return bytes.Equal(q.Key, p.Key) && bytes.Equal(q.RangeEnd, p.RangeEnd)
	})
	if i >= 0 {
		r.KeyPermission[i].PermType = p.PermType
	} else {
		r.KeyPermission = append(r.KeyPermission, p)
		sort.SliceStable(r.KeyPermission, func(a, b int) bool {
			return bytes.Compare(r.KeyPermission[a].Key, r.KeyPermission[b].Key) < 0
		})
	}
	s.bump()
	return nil
}

// RoleRevokePermission removes the permission on exactly key and
// rangeEnd.
func (s *Store) RoleRevokePermission(name string, key, rangeEnd []byte) error {
	r, ok := s.roles[name]
	if !ok {
		return ErrRoleNotFound
	}
	i := slices.IndexFunc(r.KeyPermission, func(q *authpb.Permission) bool {
		return bytes.Equal(q.Key, key) && bytes.Equal(q.RangeEnd, rangeEnd)
	})
	if i < 0 {
		return ErrPermissionNotGranted
	}
	r.KeyPermission = slices.Delete(r.KeyPermission, i, i+1)
	s.bump()
	return nil
}

// UserExists reports whether a user exists.
func (s *Store) UserExists(name string) bool {
	_, ok := s.users[name]
	return ok
}

// HasRole reports whether a user has a role.
func (s *Store) HasRole(name, role string) bool {
	u, ok := s.users[name]
	return ok && hasRole(u, role)
}

func hasRole(u *authpb.User, role string) bool {
	_, found := slices.BinarySearch(u.Roles, role)
	return found
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m { //core:maporder-ok sorted below
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
