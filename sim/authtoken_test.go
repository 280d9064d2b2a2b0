package sim

import (
	"strings"
	"testing"
	"time"
)

// TestJWTTokens: with auth on and JWT tokens, the members issue etcd's
// JWT tokens through the server's provider (an Ed25519 or an HMAC key,
// by seed), every check passes, and the run replays.
func TestJWTTokens(t *testing.T) {
	for _, seed := range []uint64{1, 2} { // one of each signing method
		o := short(seed)
		o.Duration, o.AuthOn, o.AuthToken, o.AuthClients = 5*time.Second, "on", "jwt", 2
		w := runPassingTwice(t, o)
		jwts := 0
		for _, c := range w.clients {
			if strings.Count(c.login.token, ".") == 2 {
				jwts++
			}
		}
		if jwts == 0 {
			t.Errorf("seed %d (%s): no client holds a JWT token", seed, o.authTokenFlag())
		}
	}
}
