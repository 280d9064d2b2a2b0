package sim

import (
	"fmt"
	"testing"
)

// TestAppendTime: the trace's time prefix is fmt's, digit for digit, so
// recorded trace hashes do not move.
func TestAppendTime(t *testing.T) {
	for _, now := range []int64{0, 1, 999_999, 1_000_000, 1_234_567, 99_999_999_999, 100_000_000_000, 123_456_789_012_345, -1, -1_500_000} {
		want := fmt.Sprintf("%5d.%06d ", now/1_000_000, now%1_000_000)
		if got := string(appendTime([]byte("x"), now)); got != "x"+want {
			t.Errorf("appendTime(%d) = %q, want %q", now, got, "x"+want)
		}
	}
}
