package driver

import (
	"context"
	"sync"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/grpcsvc"
)

// TokenCacheMax bounds the simple tokens a Frontend remembers; past it
// the cache starts over (its entries are only shortcuts).
const TokenCacheMax = 4096

// tokenCache remembers whom the loop said a simple token names, so that
// reads with it are checked off the loop, as with a JWT. An entry holds
// while the auth store's revision is the one it was checked at (a user
// deleted, a password changed, auth disabled all change it) and until
// half the token's lifetime has passed on the node's clock: the next read
// after that asks the loop again, which renews the token there.
type tokenCache struct {
	mu      sync.Mutex
	byToken map[string]cachedToken
}

type cachedToken struct {
	user      string
	authRev   uint64
	untilTick int64
}

func (c *tokenCache) get(token string, authRev uint64, tick int64) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byToken[token]
	if !ok || e.authRev != authRev || tick >= e.untilTick {
		return "", false
	}
	return e.user, true
}

func (c *tokenCache) put(token string, e cachedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byToken == nil || len(c.byToken) >= TokenCacheMax {
		c.byToken = make(map[string]cachedToken)
	}
	c.byToken[token] = e
}

// tokenCaller is who a simple token names: from the cache, else from the
// loop (a WhoAmI), then cached.
func (f *Frontend) tokenCaller(ctx context.Context, token string) (grpcsvc.Caller, error) {
	if user, ok := f.tokens.get(token, f.perms.Load().Revision(), f.ticks.Load()); ok {
		return grpcsvc.Caller{User: user, Known: true}, nil
	}
	resp, err := f.Do(ctx, core.Request{Token: token, WhoAmI: true})
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return grpcsvc.Caller{}, err
	}
	c := resp.Caller
	if c == nil || c.TokenUser == "" {
		return grpcsvc.Caller{}, nil // auth is off now: the loop decides
	}
	f.tokens.put(token, cachedToken{user: c.TokenUser, authRev: c.TokenRevision, untilTick: resp.CallerUntilTick})
	return grpcsvc.Caller{User: c.TokenUser, Known: true}, nil
}
