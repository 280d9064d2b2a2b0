package auth

import (
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
)

// BenchmarkIsRangePermitted checks a read by a user with 4 roles of 8
// permissions each, as every request with auth on is checked.
func BenchmarkIsRangePermitted(b *testing.B) {
	s := New()
	if err := s.UserAdd("u", nil, true); err != nil {
		b.Fatal(err)
	}
	for r := range 4 {
		role := fmt.Sprintf("r%d", r)
		if err := s.RoleAdd(role); err != nil {
			b.Fatal(err)
		}
		for p := range 8 {
			key := fmt.Sprintf("/app%d/%d/", r, p)
			perm := &authpb.Permission{PermType: authpb.READWRITE, Key: []byte(key), RangeEnd: []byte(key[:len(key)-1] + "0")}
			if err := s.RoleGrantPermission(role, perm); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.UserGrantRole("u", role); err != nil {
			b.Fatal(err)
		}
	}
	s.enabled = true
	key := []byte("/app3/7/k")
	b.ReportAllocs()
	for b.Loop() {
		if err := s.IsRangePermitted("u", key, nil, false); err != nil {
			b.Fatal(err)
		}
	}
}
