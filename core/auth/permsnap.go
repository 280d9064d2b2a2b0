package auth

import (
	"bytes"
	"slices"

	"go.etcd.io/etcd/api/v3/authpb"
)

// Perms is what a store permits as of one revision, immutable: each
// user's read and write intervals merged once, when the store changes,
// rather than at every check. The store checks with its own; drivers
// hand it to handlers, which check reads off the loop with it.
type Perms struct {
	enabled  bool
	revision uint64
	users    map[string]*userPerms
}

// userPerms are one user's merged, sorted intervals.
type userPerms struct {
	root        bool
	read, write []interval
}

// Perms returns the store's permissions as they are now.
func (s *Store) Perms() *Perms {
	if s.perms == nil {
		s.perms = newPerms(s)
	}
	return s.perms
}

func newPerms(s *Store) *Perms {
	p := &Perms{enabled: s.enabled, revision: s.revision, users: make(map[string]*userPerms, len(s.users))}
	for name, u := range s.users { //core:maporder-ok each user built alone
		up := &userPerms{root: hasRole(u, Root)}
		if !up.root {
			up.read = merge(s.intervals(u, false))
			up.write = merge(s.intervals(u, true))
		}
		p.users[name] = up
	}
	return p
}

// intervals are the ranges u's roles let it read (or write).
func (s *Store) intervals(u *authpb.User, write bool) []interval {
	var ivs []interval
	for _, name := range u.Roles {
		r, ok := s.roles[name]
		if !ok {
			continue
		}
		for _, p := range r.KeyPermission {
			if allows(p.PermType, write) {
				ivs = append(ivs, toInterval(p.Key, p.RangeEnd))
			}
		}
	}
	return ivs
}

// Enabled reports whether auth was on.
func (p *Perms) Enabled() bool { return p.enabled }

// Revision is the store's revision the permissions are of.
func (p *Perms) Revision() uint64 { return p.revision }

// CheckRange is the check a request by user gets when its credentials
// date from auth revision rev (a JWT's; a simple token or a client
// certificate dates from now: pass Revision()): refused if the store has
// changed since, else IsRangePermitted.
func (p *Perms) CheckRange(user string, rev uint64, key, end []byte, write bool) error {
	if !p.enabled {
		return nil
	}
	if rev < p.revision {
		return ErrAuthOldRevision
	}
	return p.IsRangePermitted(user, key, end, write)
}

// IsRangePermitted is Store.IsRangePermitted as of the revision.
func (p *Perms) IsRangePermitted(user string, key, end []byte, write bool) error {
	if !p.enabled {
		return nil
	}
	u, ok := p.users[user]
	if !ok {
		return ErrPermissionDenied
	}
	if u.root {
		return nil
	}
	ivs := u.read
	if write {
		ivs = u.write
	}
	want := toInterval(key, end)
	if !want.open && bytes.Compare(want.end, key) <= 0 {
		want = toInterval(key, nil)
	}
	if covered(ivs, want) {
		return nil
	}
	return ErrPermissionDenied
}

// merge sorts ivs and joins those that touch or overlap.
func merge(ivs []interval) []interval {
	slices.SortFunc(ivs, func(a, b interval) int { return bytes.Compare(a.start, b.start) })
	var out []interval
	for i := 0; i < len(ivs); {
		m := ivs[i]
		for i++; i < len(ivs) && !m.open && bytes.Compare(ivs[i].start, m.end) <= 0; i++ {
			if ivs[i].open || bytes.Compare(ivs[i].end, m.end) > 0 {
				m.end, m.open = ivs[i].end, ivs[i].open
			}
		}
		out = append(out, m)
	}
	return out
}

// covered reports whether one of the merged intervals contains want.
func covered(merged []interval, want interval) bool {
	for _, m := range merged {
		if bytes.Compare(m.start, want.start) <= 0 && (m.open || !want.open && bytes.Compare(want.end, m.end) <= 0) {
			return true
		}
	}
	return false
}
