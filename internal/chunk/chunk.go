// Package chunk cuts a byte stream into messages of a fixed size, for the
// streams that carry a member's whole state (snapshots to peers, backups
// to clients).
package chunk

// Writer buffers what is written and hands Send each full chunk of Size
// bytes; Flush sends what is left. Send owns the slice it gets, unless
// Reuse is set.
type Writer struct {
	Size int
	Send func([]byte) error
	// Reuse says Send keeps no slice past its return: one buffer serves
	// every chunk, so a stream of any length allocates one chunk.
	Reuse bool
	buf   []byte
}

func (w *Writer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, w.Size)
		}
		k := min(len(p), w.Size-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == w.Size {
			if err := w.Flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// Flush sends the bytes not sent yet, if any.
func (w *Writer) Flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	b := w.buf
	w.buf = nil
	if w.Reuse {
		w.buf = b[:0]
	}
	return w.Send(b)
}
