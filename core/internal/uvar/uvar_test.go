package uvar

import (
	"encoding/binary"
	"errors"
	"testing"
)

var errBase = errors.New("base")

func TestReader(t *testing.T) {
	b := binary.AppendUvarint(nil, 300)
	b = AppendBytes(b, []byte("abc"))
	r := NewReader(b, errBase, "test")
	if v, s := r.Uvarint(), r.Bytes(); v != 300 || string(s) != "abc" || r.Err() != nil || r.Offset() != len(b) {
		t.Fatalf("got %d %q %v at %d", v, s, r.Err(), r.Offset())
	}
	cut := NewReader(b[:len(b)-1], errBase, "test")
	cut.Uvarint()
	if cut.Bytes() != nil || !errors.Is(cut.Err(), errBase) {
		t.Fatalf("a field past the end: %v", cut.Err())
	}
	if cut.Uvarint() != 0 {
		t.Fatal("a reader with an error went on reading")
	}
	if r := NewReader(nil, errBase, "test"); r.Uvarint() != 0 || !errors.Is(r.Err(), errBase) {
		t.Fatalf("an empty input: %v", r.Err())
	}
}
