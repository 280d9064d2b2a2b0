package snapresume

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// chunksOf cuts content into ChunkBytes chunks and digests them, as a
// sender does.
func chunksOf(content []byte) []Chunk {
	var cs []Chunk
	for len(content) > 0 {
		k := min(len(content), ChunkBytes)
		cs = append(cs, ChunkOf(content[:k]))
		content = content[k:]
	}
	return cs
}

// content is n bytes of a pattern that differs between chunks.
func content(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i/ChunkBytes) + byte(i%251)
	}
	return b
}

func TestPlanFor(t *testing.T) {
	snap := content(3*ChunkBytes+100, 1)
	otherHead := slices.Clone(snap)
	copy(otherHead, "index 9 term 3") // a newer snapshot of the same data
	corrupt := slices.Clone(snap)
	corrupt[ChunkBytes+17] ^= 1
	grown := append(slices.Clone(snap), content(2*ChunkBytes, 7)...)
	tests := []struct {
		name    string
		partial []byte // the receiver's partial content
		sender  []byte
		held    []bool
	}{
		{"nothing kept", nil, snap, []bool{false, false, false, false}},
		{"same snapshot, broke after two chunks and a half", snap[:2*ChunkBytes+ChunkBytes/2], snap, []bool{true, true, false, false}},
		{"same snapshot, all but the sum arrived", snap, snap, []bool{true, true, true, true}},
		{"a newer snapshot of the same data: only the head differs", snap[:3*ChunkBytes], otherHead, []bool{false, true, true, false}},
		{"a different snapshot", content(3*ChunkBytes, 9), snap, []bool{false, false, false, false}},
		{"a corrupt partial chunk is resent", corrupt, snap, []bool{true, false, true, true}},
		{"partial larger than the snapshot", grown, snap, []bool{true, true, true, false}},
		{"snapshot larger than the partial", snap, grown, []bool{true, true, true, false, false, false}},
		{"an empty snapshot", snap, nil, []bool{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Offer{Chunks: chunksOf(tt.partial)}
			if o.Bytes() != int64(len(tt.partial)) {
				t.Fatalf("offer holds %d bytes, the partial %d", o.Bytes(), len(tt.partial))
			}
			cs := chunksOf(tt.sender)
			p := PlanFor(o, cs)
			if !slices.Equal(p.Held, tt.held) {
				t.Fatalf("held %v, want %v", p.Held, tt.held)
			}
			var held int64
			for i, h := range p.Held {
				if h {
					held += cs[i].Bytes
				}
			}
			if p.HeldBytes != held || p.HeldBytes+p.SentBytes != int64(len(tt.sender)) {
				t.Fatalf("held %d sent %d of %d bytes", p.HeldBytes, p.SentBytes, len(tt.sender))
			}
		})
	}
}

func TestHoldsNeverAnEmptyOrOutOfRangeChunk(t *testing.T) {
	o := Offer{Chunks: []Chunk{{}, ChunkOf([]byte("a"))}}
	for _, tt := range []struct {
		i int
		c Chunk
	}{{0, Chunk{}}, {-1, ChunkOf([]byte("a"))}, {2, ChunkOf([]byte("a"))}, {1, ChunkOf([]byte("b"))}} {
		if o.Holds(tt.i, tt.c) {
			t.Errorf("Holds(%d, %v)", tt.i, tt.c)
		}
	}
	if !o.Holds(1, ChunkOf([]byte("a"))) {
		t.Error("the same chunk at the same index is not held")
	}
}

func TestOfferWire(t *testing.T) {
	o := Offer{Chunks: chunksOf(content(2*ChunkBytes+5, 3))}
	got, err := ParseOffer(o.Marshal())
	if err != nil || !slices.Equal(got.Chunks, o.Chunks) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	if got, err := ParseOffer(Offer{}.Marshal()); err != nil || len(got.Chunks) != 0 {
		t.Fatalf("empty offer: %v %v", got, err)
	}
	short := Offer{Chunks: []Chunk{ChunkOf([]byte("x")), ChunkOf(content(ChunkBytes, 1))}}
	big := Offer{Chunks: []Chunk{{Bytes: ChunkBytes + 1}}}
	for _, tt := range []struct {
		name string
		b    []byte
		want string
	}{
		{"too short", []byte{1}, "offer of 1 bytes"},
		{"cut", o.Marshal()[:50], "chunks in 50 bytes"},
		{"too many chunks", []byte{0xff, 0xff, 0xff, 0xff}, "at most"},
		{"a short chunk before the last", short.Marshal(), "chunk 0 of 2 has 1 bytes"},
		{"a chunk too long", big.Marshal(), "has 1048577 bytes"},
	} {
		if _, err := ParseOffer(tt.b); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	if !bytes.Equal(Offer{}.Marshal(), []byte{0, 0, 0, 0}) {
		t.Error("the empty offer is not 4 zero bytes")
	}
}

func TestPick(t *testing.T) {
	a := Partial{Name: "a", Index: 100, Term: 2, Bytes: 5 << 20}
	b := Partial{Name: "b", Index: 120, Term: 3, Bytes: 1 << 20}
	c := Partial{Name: "c", Index: 130, Term: 3, Bytes: 5 << 20}
	empty := Partial{Name: "e", Index: 140, Term: 4}
	tests := []struct {
		name        string
		ps          []Partial
		index, term uint64
		want        int
	}{
		{"none", nil, 100, 2, -1},
		{"only an empty one", []Partial{empty}, 140, 4, -1},
		{"the same snapshot, though smaller", []Partial{a, b}, 120, 3, 1},
		{"same index, another term is not the same", []Partial{a, b}, 120, 4, 0},
		{"the largest", []Partial{b, a}, 200, 4, 1},
		{"as large: the newer", []Partial{a, c}, 200, 4, 1},
		{"as large, newer first", []Partial{c, a}, 200, 4, 0},
	}
	for _, tt := range tests {
		if got := Pick(tt.ps, tt.index, tt.term); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestKeep(t *testing.T) {
	a := Partial{Name: "a", Index: 100, Bytes: 5 << 20}
	b := Partial{Name: "b", Index: 120, Bytes: 1 << 20}
	c := Partial{Name: "c", Index: 130, Bytes: 5 << 20}
	empty := Partial{Name: "e", Index: 140}
	names := func(ps []Partial) (s []string) {
		for _, p := range ps {
			s = append(s, p.Name)
		}
		return s
	}
	tests := []struct {
		name       string
		ps         []Partial
		keep, drop []string
	}{
		{"none", nil, nil, nil},
		{"under the limit", []Partial{b, a}, []string{"a", "b"}, nil},
		{"the largest, newer first", []Partial{a, b, c}, []string{"c", "a"}, []string{"b"}},
		{"an empty one goes", []Partial{empty, b}, []string{"b"}, []string{"e"}},
	}
	for _, tt := range tests {
		keep, drop := Keep(tt.ps)
		if !slices.Equal(names(keep), tt.keep) || !slices.Equal(names(drop), tt.drop) {
			t.Errorf("%s: keep %v drop %v, want %v and %v", tt.name, names(keep), names(drop), tt.keep, tt.drop)
		}
	}
}

func TestCuts(t *testing.T) {
	old := Transfer{From: 1, Term: 2}
	newer := Transfer{From: 2, Term: 3}
	tests := []struct {
		name    string
		active  []Transfer
		t       Transfer
		cut     []int
		refused bool
	}{
		{"nothing in progress", nil, newer, nil, false},
		{"a newer leader cuts the old one's", []Transfer{old}, newer, []int{0}, false},
		{"another member of the same term cuts too", []Transfer{{From: 3, Term: 3}}, newer, []int{0}, false},
		{"the leader's own second transfer cuts nothing", []Transfer{newer}, newer, nil, false},
		{"an older leader's is refused", []Transfer{newer}, old, nil, true},
		{"refused if any is newer", []Transfer{old, newer}, Transfer{From: 3, Term: 2}, nil, true},
		{"cuts all from others", []Transfer{old, {From: 3, Term: 1}, newer}, newer, []int{0, 1}, false},
	}
	for _, tt := range tests {
		cut, refused := Cuts(tt.active, tt.t)
		if !slices.Equal(cut, tt.cut) || refused != tt.refused {
			t.Errorf("%s: cut %v refused %v, want %v %v", tt.name, cut, refused, tt.cut, tt.refused)
		}
	}
}
