package chunk

import (
	"bytes"
	"slices"
	"testing"
)

func TestWriter(t *testing.T) {
	var got [][]byte
	w := &Writer{Size: 4, Send: func(b []byte) error { got = append(got, b); return nil }}
	for _, s := range []string{"ab", "cdefg", "", "hijklmnop"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("write %q: %d %v", s, n, err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := [][]byte{[]byte("abcd"), []byte("efgh"), []byte("ijkl"), []byte("mnop")}
	if len(got) != len(want) {
		t.Fatalf("chunks %q, want %q", got, want)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("chunk %d: %q, want %q", i, got[i], want[i])
		}
	}
}

// TestWriterReuse: with Reuse, every chunk comes in the one buffer, and
// the chunks are still cut right.
func TestWriterReuse(t *testing.T) {
	var got []string
	var first *byte
	w := &Writer{Size: 4, Reuse: true, Send: func(b []byte) error {
		if first == nil {
			first = &b[0]
		} else if &b[0] != first {
			t.Fatal("a chunk in a new buffer")
		}
		got = append(got, string(b))
		return nil
	}}
	if _, err := w.Write([]byte("abcdefghij")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"abcd", "efgh", "ij"}; !slices.Equal(got, want) {
		t.Fatalf("chunks %q, want %q", got, want)
	}
}
