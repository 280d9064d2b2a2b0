package grpcsvc

import (
	"errors"
	"slices"
	"testing"

	"github.com/detcd/detcd/core"
)

// TestPeerURLs: peer URLs are checked as etcd's types.NewURLs checks them
// (MemberAdd answers ErrGRPCMemberBadURLs otherwise), and kept as etcd
// keeps a new member's.
func TestPeerURLs(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string // nil: refused
	}{
		{in: []string{"http://10.0.0.1:2380"}, want: []string{"http://10.0.0.1:2380"}},
		{in: []string{" https://b:2380 ", "http://a:2380"}, want: []string{"http://a:2380", "https://b:2380"}},
		{in: []string{"HTTP://a:2380"}, want: []string{"http://a:2380"}},
		{in: []string{"http://[::1]:2380"}, want: []string{"http://[::1]:2380"}},
		{in: []string{"unix://localhost:2380"}, want: []string{"unix://localhost:2380"}},
		{in: []string{"unixs:///tmp/peer"}, want: []string{"unixs:///tmp/peer"}},
		{in: nil},
		{in: []string{"http://10.0.0.1"}},           // no port
		{in: []string{"https://example.com"}},       // no port
		{in: []string{"http://10.0.0.1:2380/"}},     // a path
		{in: []string{"http://10.0.0.1:2380/peer"}}, // a path
		{in: []string{"ftp://10.0.0.1:2380"}},
		{in: []string{"10.0.0.1:2380"}}, // no scheme
		{in: []string{"http://a:2380", "http://b"}},
		{in: []string{"http://%zz:2380"}},
		{in: []string{""}},
	} {
		got, err := peerURLs(tc.in)
		switch {
		case tc.want == nil && !errors.Is(err, core.ErrMemberBadURLs):
			t.Errorf("%q: got %q, %v; want %v", tc.in, got, err, core.ErrMemberBadURLs)
		case tc.want != nil && (err != nil || !slices.Equal(got, tc.want)):
			t.Errorf("%q: got %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
