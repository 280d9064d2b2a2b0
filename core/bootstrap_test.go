package core_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/detcd/detcd/core"
)

// TestBootstrapEntriesSameOnEveryMember: the members of a new cluster
// write the same configuration entries first, whatever each knows of
// itself beyond --initial-cluster. The server gives a member its own
// client URLs (to publish them later); they stayed in its bootstrap
// entry, so the members' logs differed at index 1 to n, which etcd's
// never do (its bootstrap members carry no client URLs).
func TestBootstrapEntriesSameOnEveryMember(t *testing.T) {
	members := func(self uint64) []core.Member {
		ms := []core.Member{
			{ID: 1, Name: "m1", PeerURLs: []string{"http://m1:2380"}},
			{ID: 2, Name: "m2", PeerURLs: []string{"http://m2:2380"}},
		}
		ms[self-1].ClientURLs = []string{fmt.Sprintf("http://m%d:2379", self)}
		return ms
	}
	var first [][]byte
	for _, id := range []uint64{1, 2} {
		n, err := core.New(core.Config{ID: id, ClusterID: 100, Members: members(id), ProposalEpoch: 1 << 40})
		if err != nil {
			t.Fatal(err)
		}
		rd := n.Ready()
		if rd.Persist == nil || len(rd.Persist.Entries) != 2 {
			t.Fatalf("member %d: first ready persists %+v, want the 2 bootstrap entries", id, rd.Persist)
		}
		for i, e := range rd.Persist.Entries {
			if first == nil || i >= len(first) {
				first = append(first, e.Data)
				continue
			}
			if !bytes.Equal(first[i], e.Data) {
				t.Errorf("bootstrap entry %d differs: member 1 wrote %s, member %d %s", e.Index, first[i], id, e.Data)
			}
		}
	}
}
