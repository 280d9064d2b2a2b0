package lease

import (
	"strings"
	"testing"
)

// TestCheckInvariantsBites: a lost expiry timer, an expiry on a lessor
// that is not the primary and a remaining TTL above the TTL are seen.
func TestCheckInvariantsBites(t *testing.T) {
	for _, tc := range []struct {
		name    string
		primary bool
		breakIt func(le *Lessor)
		want    string
	}{
		{"intact primary", true, func(*Lessor) {}, ""},
		{"intact follower", false, func(*Lessor) {}, ""},
		{"timer lost", true, func(le *Lessor) { le.expiries = nil }, "no timer"},
		{"expiry on a follower", false, func(le *Lessor) { le.leases[1].expiry = 5 }, "not the primary"},
		{"remaining above TTL", true, func(le *Lessor) { le.leases[1].RemainingTTL = 11 }, "remaining TTL 11"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			le := New(Config{TicksPerSecond: 10, MinTTL: 2})
			if tc.primary {
				le.Promote(0, 0)
			}
			if _, err := le.Grant(1, 10, 0); err != nil {
				t.Fatal(err)
			}
			tc.breakIt(le)
			err := le.CheckInvariants()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("intact lessor: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
