package mvcc

import (
	"fmt"
	"strings"
	"testing"
)

// TestHashKVGolden replays short histories and compares every HashKV with
// what etcd 3.7.3 answered to the same requests (hash/compact
// revision/hash revision). A hash right after a compaction at its revision
// is the one etcd kept while compacting, so the test keeps them as the
// node does: taken from the view before the compaction.
func TestHashKVGolden(t *testing.T) {
	tests := []struct {
		script string
		want   string
	}{
		{"hash 0", "1084519789/-1/1"},
		{"put a 1; put b 2; hash 0; hash 2; hash 3",
			"1827592406/-1/3 2587454935/-1/2 1827592406/-1/3"},
		{"put a 1; put b 2; del a; hash 2; hash 3; hash 4",
			"2587454935/-1/2 1827592406/-1/3 1562576432/-1/4"},
		// The compaction at 3 keeps a's tombstone at 3, so its hash leaves
		// out a's put at 2 although no key is live at 3.
		{"put a 1; compact 2; del a; hash 3; compact 3; hash 3; hash 0",
			"3520211144/2/3 3681333679/2/3 1084519789/3/3"},
		{"put a 1; del a; compact 3; hash 3; hash 0",
			"3520211144/-1/3 1084519789/3/3"},
		{"put a 1; put b 2; del a; compact 4; hash 4; put c 3; hash 5; hash 0",
			"1562576432/-1/4 4196123440/4/5 4196123440/4/5"},
		{"put a 1; put a 2; put b 3; compact 3; hash 3; hash 4; del b; hash 5; compact 5; hash 5; hash 0",
			"535221974/-1/3 3145224014/3/4 395176773/3/5 395176773/3/5 1483641527/5/5"},
		{"put a 1; txn-del-put a b; hash 3; compact 3; hash 3; hash 0",
			"983824565/-1/3 983824565/-1/3 2639605361/3/3"},
		{"put a 1; put b 1; delrange a c; put a 2; compact 4; hash 4; compact 5; hash 5; hash 0",
			"108040959/-1/4 1694275703/4/5 1694275703/5/5"},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			s := New()
			kept := map[Revision]KVHash{}
			var got []string
			for _, step := range strings.Split(tt.script, "; ") {
				f := strings.Fields(step)
				switch f[0] {
				case "put":
					tx := s.Write()
					tx.Put([]byte(f[1]), []byte(f[2]), 0)
					tx.End()
				case "del", "delrange":
					var end []byte
					if len(f) > 2 {
						end = []byte(f[2])
					}
					tx := s.Write()
					tx.DeleteRange([]byte(f[1]), end)
					tx.End()
				case "txn-del-put":
					tx := s.Write()
					tx.DeleteRange([]byte(f[1]), nil)
					tx.Put([]byte(f[2]), []byte("v"), 0)
					tx.End()
				case "compact":
					rev := parseRev(t, f[1])
					kept[rev] = s.Snapshot().CompactionHash(rev)
					if err := s.Compact(rev, nil); err != nil {
						t.Fatalf("%s: %v", step, err)
					}
					for s.Step(1 << 20) {
					}
				case "hash":
					rev := parseRev(t, f[1])
					h, ok := kept[rev]
					if !ok {
						var err error
						if h, err = s.Snapshot().HashKV(rev); err != nil {
							t.Fatalf("%s: %v", step, err)
						}
					}
					got = append(got, fmt.Sprintf("%d/%d/%d", h.Hash, h.CompactRev, h.Rev))
				}
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Errorf("got  %s\nwant %s (etcd 3.7.3)", g, tt.want)
			}
		})
	}
}

func parseRev(t *testing.T, s string) Revision {
	var r int64
	if _, err := fmt.Sscan(s, &r); err != nil {
		t.Fatal(err)
	}
	return Revision(r)
}

// TestHashFlavorsAgree: etcd's HashKV and the hash it keeps when it
// compacts differ when the only changes at the revision are deletions (the
// golden hashes above: 3520211144 and 3681333679 at revision 3, both with
// compaction revision 2). A member that compacted at 3 and one that had not
// yet hold the same data, so each hash carries the other flavor as Alt.
func TestHashFlavorsAgree(t *testing.T) {
	s := New()
	tx := s.Write()
	tx.Put([]byte("a"), []byte("1"), 0)
	tx.End()
	if err := s.Compact(2, nil); err != nil {
		t.Fatal(err)
	}
	for s.Step(1 << 20) {
	}
	tx = s.Write()
	tx.DeleteRange([]byte("a"), nil)
	tx.End()
	live, err := s.Snapshot().HashKV(3)
	if err != nil {
		t.Fatal(err)
	}
	kept := s.Snapshot().CompactionHash(3)
	if live.Hash != 3520211144 || kept.Hash != 3681333679 {
		t.Fatalf("hashes %d and %d, want etcd's 3520211144 and 3681333679", live.Hash, kept.Hash)
	}
	if !live.Agrees(kept.Hash) || !kept.Agrees(live.Hash) {
		t.Fatalf("live %+v and kept %+v do not agree", live, kept)
	}
	if live.Agrees(kept.Hash+1) || kept.Agrees(live.Hash+1) {
		t.Fatal("another hash agrees")
	}
	tx = s.Write()
	tx.Put([]byte("b"), []byte("2"), 0)
	tx.End()
	if h, _ := s.Snapshot().HashKV(4); h.Alt != h.Hash {
		t.Fatalf("a live key at the revision: flavors differ: %+v", h)
	}
}
