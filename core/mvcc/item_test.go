package mvcc

import (
	"math/rand/v2"
	"testing"
)

// TestItemLessMatchesKeyOrder checks that comparing items by their key
// prefix first orders them as their keys, with keys that share prefixes,
// end inside the first 8 bytes or hold zero bytes there.
func TestItemLessMatchesKeyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{0, 1, 'a', 0xff}
	key := func() string {
		b := make([]byte, rng.IntN(11))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 100000 {
		a, b := key(), key()
		if got := itemLess(probe(a), probe(b)); got != (a < b) {
			t.Fatalf("itemLess(%q, %q) = %v", a, b, got)
		}
	}
}
