package chunk

import (
	"bytes"
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
