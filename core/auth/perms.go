package auth

import (
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
	return s.Perms().IsRangePermitted(user, key, end, write)
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
