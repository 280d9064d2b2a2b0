package auth

import (
	"errors"
	"slices"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
)

// permStore has user u with roles a (read [a, c) and the key x) and b
// (write from m on), and root.
func permStore(t *testing.T) *Store {
	t.Helper()
	s := New()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.UserAdd(Root, []byte("h"), false))
	must(s.RoleAdd(Root))
	must(s.UserGrantRole(Root, Root))
	must(s.UserAdd("u", []byte("h"), false))
	must(s.RoleAdd("a"))
	must(s.RoleAdd("b"))
	must(s.RoleGrantPermission("a", &authpb.Permission{PermType: authpb.READ, Key: []byte("a"), RangeEnd: []byte("c")}))
	must(s.RoleGrantPermission("a", &authpb.Permission{PermType: authpb.READWRITE, Key: []byte("x")}))
	must(s.RoleGrantPermission("b", &authpb.Permission{PermType: authpb.WRITE, Key: []byte("m"), RangeEnd: []byte{0}}))
	must(s.UserGrantRole("u", "a"))
	must(s.UserGrantRole("u", "b"))
	must(s.Enable())
	return s
}

func TestIsRangePermitted(t *testing.T) {
	s := permStore(t)
	for _, tt := range []struct {
		user, key, end string
		write, ok      bool
	}{
		{"u", "a", "", false, true},
		{"u", "bz", "", false, true},
		{"u", "c", "", false, false}, // the end is open
		{"u", "a", "c", false, true},
		{"u", "a", "d", false, false},
		{"u", "a", "", true, false},
		{"u", "x", "", true, true},
		{"u", "x", "", false, true},
		{"u", "x", "y", false, false}, // only the key x, not a range from it
		{"u", "m", "\x00", true, true},
		{"u", "zzz", "", true, true},
		{"u", "m", "\x00", false, false},
		{"u", "l", "\x00", true, false},
		{"root", "", "\x00", true, true},
		{"nobody", "a", "", false, false},
		// An end at or before the key: empty, but the key itself must be
		// permitted.
		{"u", "zzz", "a", false, false}, // [a, c) reaches past the end, not the key
		{"u", "zzz", "c", false, false},
		{"u", "b", "b", false, true},
		{"u", "b", "a", false, true},
		{"u", "c", "b", false, false},
		{"u", "c", "c", false, false}, // [a, c) ends at the end, not the key
		{"u", "x", "b", false, true},
		{"u", "y", "x", false, false}, // the key x ends at the end y
		{"u", "zzz", "m", true, true},
		{"u", "l", "a", true, false},
	} {
		err := s.IsRangePermitted(tt.user, []byte(tt.key), []byte(tt.end), tt.write)
		if (err == nil) != tt.ok {
			t.Errorf("%s %q..%q write=%v: %v, want ok=%v", tt.user, tt.key, tt.end, tt.write, err, tt.ok)
		}
	}
	s.Disable()
	if err := s.IsRangePermitted("nobody", []byte("a"), nil, true); err != nil {
		t.Errorf("auth off: %v", err)
	}
}

// TestCoveredUnion: ranges that only cover together still cover.
func TestCoveredUnion(t *testing.T) {
	ivs := []interval{toInterval([]byte("c"), []byte("e")), toInterval([]byte("a"), []byte("c")), toInterval([]byte("e"), []byte{0})}
	for _, tt := range []struct {
		key, end string
		ok       bool
	}{{"a", "e", true}, {"b", "d", true}, {"a", "\x00", true}, {"", "b", false}, {"d", "", true}} {
		if got := covered(merge(slices.Clone(ivs)), toInterval([]byte(tt.key), []byte(tt.end))); got != tt.ok {
			t.Errorf("%q..%q: %v, want %v", tt.key, tt.end, got, tt.ok)
		}
	}
}

func TestStoreErrors(t *testing.T) {
	s := New()
	for _, tt := range []struct {
		name string
		err  error
		want error
	}{
		{"enable without root", s.Enable(), ErrRootUserNotExist},
		{"add root", s.UserAdd(Root, nil, false), nil},
		{"enable without root role", s.Enable(), ErrRootRoleNotExist},
		{"grant root role before it exists", s.UserGrantRole(Root, Root), nil},
		{"enable", s.Enable(), nil},
		{"empty user", s.UserAdd("", nil, false), ErrUserEmpty},
		{"duplicate user", s.UserAdd(Root, nil, false), ErrUserAlreadyExist},
		{"empty role", s.RoleAdd(""), ErrRoleEmpty},
		{"role", s.RoleAdd("r"), nil},
		{"duplicate role", s.RoleAdd("r"), ErrRoleAlreadyExist},
		{"grant missing role", s.UserGrantRole(Root, "nope"), ErrRoleNotFound},
		{"grant to missing user", s.UserGrantRole("nope", "r"), ErrUserNotFound},
		{"revoke ungranted", s.UserRevokeRole(Root, "r"), ErrRoleNotGranted},
		{"nil permission", s.RoleGrantPermission("r", nil), ErrPermissionNotGiven},
		{"revoke missing permission", s.RoleRevokePermission("r", []byte("k"), nil), ErrPermissionNotGranted},
		{"root keeps root", s.UserRevokeRole(Root, Root), ErrInvalidAuthMgmt},
		{"root stays", s.UserDelete(Root), ErrInvalidAuthMgmt},
		{"root role stays", s.RoleDelete(Root), ErrInvalidAuthMgmt},
		{"delete missing", s.UserDelete("nope"), ErrUserNotFound},
	} {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, tt.err, tt.want)
		}
	}
}

// TestRevision: every change bumps the revision except enabling, and a
// grant that changes nothing, as etcd's store does.
func TestRevision(t *testing.T) {
	s := permStore(t)
	r := s.Revision()
	if s.UserGrantRole("u", "a"); s.Revision() != r {
		t.Error("a repeated role grant bumped the revision")
	}
	if s.Disable(); s.Revision() != r+1 {
		t.Error("disable did not bump the revision")
	}
	if s.Enable(); s.Revision() != r+1 {
		t.Error("enable bumped the revision")
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	s := permStore(t)
	got, err := Unmarshal(s.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Marshal()) != string(s.Marshal()) || !got.Enabled() || got.Revision() != s.Revision() {
		t.Fatal("the store changed through Marshal and Unmarshal")
	}
	if err := got.IsRangePermitted("u", []byte("x"), nil, true); err != nil {
		t.Fatalf("permissions lost: %v", err)
	}
	if _, err := Unmarshal(s.Marshal()[:5]); !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("a cut encoding: %v", err)
	}
}

func TestTokens(t *testing.T) {
	tk := NewTokens(10)
	tk.Assign("t1", "u", 0)
	if u, ok := tk.Lookup("t1", 5); !ok || u != "u" {
		t.Fatalf("lookup: %q %v", u, ok)
	}
	if _, ok := tk.Lookup("t1", 14); !ok {
		t.Fatal("a used token lapsed before its TTL from the last use")
	}
	if _, ok := tk.Lookup("t1", 24); ok {
		t.Fatal("a token outlived its TTL")
	}
	tk.Assign("t2", "v", 0)
	tk.InvalidateUser("v")
	if _, ok := tk.Lookup("t2", 1); ok {
		t.Fatal("an invalidated user's token still works")
	}
}

// TestPermsFollowTheStore: the cached permissions change with every
// change of the store, enabling included, and a Perms taken earlier keeps
// what it had (handlers may still hold it).
func TestPermsFollowTheStore(t *testing.T) {
	s := New()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.UserAdd(Root, nil, true))
	must(s.UserGrantRole(Root, Root))
	must(s.UserAdd("u", nil, true))
	must(s.RoleAdd("r"))
	must(s.UserGrantRole("u", "r"))
	off := s.Perms()
	must(s.Enable())
	if s.IsRangePermitted("u", []byte("k"), nil, false) == nil {
		t.Fatal("enabling did not take effect")
	}
	if off.IsRangePermitted("u", []byte("k"), nil, false) != nil {
		t.Fatal("an earlier Perms changed")
	}
	denied := s.Perms()
	must(s.RoleGrantPermission("r", &authpb.Permission{PermType: authpb.READ, Key: []byte("k")}))
	if err := s.IsRangePermitted("u", []byte("k"), nil, false); err != nil {
		t.Fatalf("granted read: %v", err)
	}
	if s.IsRangePermitted("u", []byte("k"), nil, true) == nil {
		t.Fatal("read granted write")
	}
	if denied.IsRangePermitted("u", []byte("k"), nil, false) == nil {
		t.Fatal("an earlier Perms changed")
	}
	p := s.Perms()
	if err := p.CheckRange("u", p.Revision()-1, []byte("k"), nil, false); !errors.Is(err, ErrAuthOldRevision) {
		t.Fatalf("old credentials: %v", err)
	}
	must(s.RoleRevokePermission("r", []byte("k"), nil))
	if s.IsRangePermitted("u", []byte("k"), nil, false) == nil {
		t.Fatal("revoked read still permitted")
	}
	must(s.UserRevokeRole("u", "r"))
	must(s.RoleGrantPermission("r", &authpb.Permission{PermType: authpb.READWRITE, Key: []byte("k")}))
	if s.IsRangePermitted("u", []byte("k"), nil, false) == nil {
		t.Fatal("a role the user lost still counts")
	}
}
