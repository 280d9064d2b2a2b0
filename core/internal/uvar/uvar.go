// Package uvar reads and writes the uvarint-framed encodings of core's
// checkpoints (the checkpoint header, the auth store). A Reader remembers
// its first error, so a decoder reads every field and checks once.
package uvar

import (
	"encoding/binary"
	"fmt"
)

// Reader reads uvarints and length-prefixed byte strings.
type Reader struct {
	b    []byte
	p    int
	err  error
	base error  // wrapped by every error
	what string // names the encoding in errors
}

// NewReader reads b; its errors wrap base and name what.
func NewReader(b []byte, base error, what string) *Reader {
	return &Reader{b: b, base: base, what: what}
}

// Uvarint reads a uvarint; 0 once an error happened.
func (r *Reader) Uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, w := binary.Uvarint(r.b[r.p:])
	if w <= 0 {
		r.Fail("bad varint at offset %d", r.p)
		return 0
	}
	r.p += w
	return v
}

// Bytes reads a uvarint length and that many bytes, aliasing the input;
// nil once an error happened.
func (r *Reader) Bytes() []byte {
	n := r.Uvarint()
	if r.err != nil {
		return nil
	}
	if uint64(len(r.b)-r.p) < n {
		r.Fail("field runs past the end at offset %d", r.p)
		return nil
	}
	v := r.b[r.p : r.p+int(n)]
	r.p += int(n)
	return v
}

// Fail records an error (the first one stays).
func (r *Reader) Fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s: %s", r.base, r.what, fmt.Sprintf(format, args...))
	}
}

// Err is the first error, if any.
func (r *Reader) Err() error { return r.err }

// Offset is where the next field starts.
func (r *Reader) Offset() int { return r.p }

// AppendBytes appends v with its uvarint length.
func AppendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}
