package auth

import (
	"bytes"
	"slices"

	"go.etcd.io/etcd/api/v3/authpb"
)

// IsAdmin reports whether user may manage auth and the cluster: anyone
// while auth is off, else only holders of the root role.
func (s *Store) IsAdmin(user string) error {
	if !s.enabled || s.HasRole(user, Root) {
		return nil
	}
	return ErrPermissionDenied
}

// IsRangePermitted reports whether user may read (or, with write, write)
// every key in [key, end), with etcd's conventions for end: empty means
// key alone, "\x00" every key from key on. An end at or before key makes
// the range empty, but, as etcd, it is permitted only if key itself is:
// the check never depends on what a range holds. The permissions of all
// the user's roles add up: a range covered by two of them together is
// permitted.
func (s *Store) IsRangePermitted(user string, key, end []byte, write bool) error {
	if !s.enabled {
		return nil
	}
	u, ok := s.users[user]
	if !ok {
		return ErrPermissionDenied
	}
	if hasRole(u, Root) {
		return nil
	}
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
	want := toInterval(key, end)
	if !want.open && bytes.Compare(want.end, key) <= 0 {
		want = toInterval(key, nil)
	}
	if covered(ivs, want) {
		return nil
	}
	return ErrPermissionDenied
}

func allows(t authpb.Permission_Type, write bool) bool {
	if t == authpb.READWRITE {
		return true
	}
	return (t == authpb.WRITE) == write
}

// interval is [start, end), or [start, infinity) when open.
type interval struct {
	start, end []byte
	open       bool
}

func toInterval(key, end []byte) interval {
	switch {
	case len(end) == 0:
		return interval{start: key, end: append(slices.Clone(key), 0)}
	case len(end) == 1 && end[0] == 0:
		return interval{start: key, open: true}
	}
	return interval{start: key, end: end}
}

// covered reports whether the union of ivs contains want.
func covered(ivs []interval, want interval) bool {
	slices.SortFunc(ivs, func(a, b interval) int { return bytes.Compare(a.start, b.start) })
	for i := 0; i < len(ivs); {
		// Merge the intervals that touch or overlap the i-th.
		m := ivs[i]
		for i++; i < len(ivs) && !m.open && bytes.Compare(ivs[i].start, m.end) <= 0; i++ {
			if ivs[i].open || bytes.Compare(ivs[i].end, m.end) > 0 {
				m.end, m.open = ivs[i].end, ivs[i].open
			}
		}
		if bytes.Compare(m.start, want.start) <= 0 && (m.open || !want.open && bytes.Compare(want.end, m.end) <= 0) {
			return true
		}
	}
	return false
}
