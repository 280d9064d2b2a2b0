package auth

// Tokens are the simple tokens a member handed out: each names a user,
// and only that (unlike a JWT, it does not date from an auth revision),
// and lapses after ttlTicks without use, as etcd's simple tokens do.
type Tokens struct {
	ttlTicks int64
	byToken  map[string]tokenInfo
}

type tokenInfo struct {
	user   string
	expiry int64 // tick
}

// TokensMax bounds the tokens kept: past it the oldest-expiring are
// dropped (their clients authenticate again).
const TokensMax = 1 << 16

// NewTokens keeps tokens for ttlTicks after their last use.
func NewTokens(ttlTicks int64) *Tokens {
	return &Tokens{ttlTicks: max(ttlTicks, 1), byToken: map[string]tokenInfo{}}
}

// Assign records a token for user.
func (t *Tokens) Assign(token, user string, now int64) {
	if len(t.byToken) >= TokensMax {
		t.dropOldest()
	}
	t.byToken[token] = tokenInfo{user: user, expiry: now + t.ttlTicks}
}

// Lookup returns the user of a live token, renewing it.
func (t *Tokens) Lookup(token string, now int64) (user string, ok bool) {
	ti, found := t.byToken[token]
	if !found || ti.expiry <= now {
		return "", false
	}
	ti.expiry = now + t.ttlTicks
	t.byToken[token] = ti
	return ti.user, true
}

// Expire forgets the tokens whose time is up.
func (t *Tokens) Expire(now int64) {
	for k, ti := range t.byToken { //core:maporder-ok deletions commute
		if ti.expiry <= now {
			delete(t.byToken, k)
		}
	}
}

// InvalidateUser forgets a user's tokens (deleted, or a new password).
func (t *Tokens) InvalidateUser(user string) {
	for k, ti := range t.byToken { //core:maporder-ok deletions commute
		if ti.user == user {
			delete(t.byToken, k)
		}
	}
}

// Reset forgets every token (auth was disabled).
func (t *Tokens) Reset() { clear(t.byToken) }

func (t *Tokens) dropOldest() {
	var oldest string
	var at int64
	first := true
	for k, ti := range t.byToken { //core:maporder-ok a minimum, ties broken by key
		// Ties broken by token so that the choice is the same whatever
		// the map's order.
		if first || ti.expiry < at || ti.expiry == at && k < oldest {
			oldest, at, first = k, ti.expiry, false
		}
	}
	delete(t.byToken, oldest)
}
