package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strconv"
)

// tracer writes the run's trace: one line per event, formatted by this
// package only (protobuf's text output varies between binaries on
// purpose), and hashes it.
type tracer struct {
	h     hash.Hash
	w     io.Writer
	lines int64
	buf   []byte
	// onLine, if set, sees each line's text (without the time and the
	// newline) after it is hashed: the timeline takes fault details from
	// it. The bytes are the tracer's buffer, valid during the call.
	onLine func(nowUs int64, line []byte)
}

func newTracer(w io.Writer) *tracer { return &tracer{h: sha256.New(), w: w} }

// logf records a line at virtual time now (microseconds).
func (t *tracer) logf(now int64, format string, args ...any) {
	t.buf = appendTime(t.buf[:0], now)
	start := len(t.buf)
	t.buf = fmt.Appendf(t.buf, format, args...)
	t.end(now, start)
}

// log records a line of the parts joined, at virtual time now: logf's
// line for "%s%s..." without fmt, for the lines of every message.
func (t *tracer) log(now int64, parts ...string) {
	t.buf = appendTime(t.buf[:0], now)
	start := len(t.buf)
	for _, p := range parts {
		t.buf = append(t.buf, p...)
	}
	t.end(now, start)
}

// end finishes the line in buf, whose text starts at start: it hashes
// it, writes it and shows it to onLine.
func (t *tracer) end(now int64, start int) {
	t.buf = append(t.buf, '\n')
	t.h.Write(t.buf)
	t.lines++
	if t.w != nil {
		t.w.Write(t.buf)
	}
	if t.onLine != nil {
		t.onLine(now, t.buf[start:len(t.buf)-1])
	}
}

// appendTime appends virtual time now as fmt's "%5d.%06d " of its
// seconds and microseconds would, without fmt's cost on every line.
func appendTime(b []byte, now int64) []byte {
	sec, us := now/1_000_000, now%1_000_000
	if sec < 0 || us < 0 {
		return fmt.Appendf(b, "%5d.%06d ", sec, us)
	}
	var d [20]byte
	digits := strconv.AppendInt(d[:0], sec, 10)
	for i := len(digits); i < 5; i++ {
		b = append(b, ' ')
	}
	b = append(b, digits...)
	b = append(b, '.')
	digits = strconv.AppendInt(d[:0], us, 10)
	for i := len(digits); i < 6; i++ {
		b = append(b, '0')
	}
	b = append(b, digits...)
	return append(b, ' ')
}

// sum is the hash of every line so far.
func (t *tracer) sum() string { return hex.EncodeToString(t.h.Sum(nil))[:16] }
