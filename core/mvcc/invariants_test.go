package mvcc

import (
	"strings"
	"testing"
)

// TestCheckInvariantsBites: each way of breaking the store that
// CheckInvariants promises to see is seen.
func TestCheckInvariantsBites(t *testing.T) {
	put := func(s *Store, k, v string) {
		tx := s.Write()
		tx.Put([]byte(k), []byte(v), 0)
		tx.End()
	}
	// replace swaps key a's newest record for one with header h.
	replace := func(s *Store, h recHeader) {
		it, _ := s.get([]byte("a"))
		prev := s.links.link(it.ord).prev
		r, o := s.appendHot(&h, []byte("a"), []byte("x"), prev)
		s.tree.ReplaceOrInsert(it.pushed(r, o))
	}
	for _, tc := range []struct {
		name    string
		breakIt func(s *Store)
		want    string
	}{
		{"intact", func(*Store) {}, ""},
		{"version skips", func(s *Store) { replace(s, recHeader{mod: 3, create: 2, version: 3}) }, "version 3 after create 2 version 1"},
		{"create changes", func(s *Store) { replace(s, recHeader{mod: 3, create: 3, version: 2}) }, "create 3 version 2 after create 2"},
		{"revision falls", func(s *Store) { replace(s, recHeader{mod: 2, sub: 0, create: 2, version: 2}) }, "has 2.0 after 2.0"},
		{"record past the revision", func(s *Store) { replace(s, recHeader{mod: 9, create: 2, version: 2}) }, "past the revision"},
		{"compaction past the revision", func(s *Store) { s.compactRev = 7 }, "past the revision 3"},
		{"backend in use above size", func(s *Store) { s.backendInUse = s.backendSize + 1 }, "backend in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New()
			put(s, "a", "1") // rev 2
			put(s, "a", "2") // rev 3
			tc.breakIt(s)
			err := s.CheckInvariants()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("intact store: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
