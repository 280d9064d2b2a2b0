package server

import (
	"crypto"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/detcd/detcd/driver"
)

// jwtTokens signs and checks etcd's JWT auth tokens
// (--auth-token jwt,pub-key=F,priv-key=F,sign-method=M,ttl=D): stateless,
// so any member with the public key accepts any member's tokens, each
// naming the user and the auth revision it was issued at.
type jwtTokens struct {
	method    jwt.SigningMethod
	signKey   any // nil: this member verifies but cannot issue
	verifyKey any
	ttl       time.Duration
	now       func() time.Time // the clock tokens expire by
	// verified are tokens whose signature checked out, with their
	// claims: a signature never changes, so a token seen again is only
	// checked against the clock, as jwt.Parse would. Every request with
	// auth on carries a token; handlers verify from many goroutines.
	mu       sync.Mutex
	verified map[string]verifiedToken
}

// verifiedToken is what a token with a good signature claims.
type verifiedToken struct {
	user     string
	rev      uint64
	exp, nbf time.Time // nbf zero: none
}

// jwtVerifiedMax bounds the verified tokens kept: past it the cache
// starts again empty (a client's next token verifies in full once).
const jwtVerifiedMax = 4096

// validAt reports whether the token is good at now, as jwt.Parse's
// checks of exp and nbf (with no leeway) judge it.
func (v verifiedToken) validAt(now time.Time) bool {
	return now.Before(v.exp) && (v.nbf.IsZero() || !now.Before(v.nbf))
}

// jwtDefaultTTL is etcd's.
const jwtDefaultTTL = 5 * time.Minute

// TokenProvider is the member's auth token provider by --auth-token:
// nil for simple tokens (core issues them), etcd's JWT tokens otherwise,
// with their keys read by readFile and expiring by the clock now. New
// reads the key files from the os and uses the wall clock; the simulator
// gives keys from memory and its virtual clock.
func (c *Config) TokenProvider(readFile func(path string) ([]byte, error), now func() time.Time) (driver.Tokens, error) {
	t, err := parseJWTOptions(c.AuthToken, readFile, now)
	if t == nil || err != nil {
		return nil, err
	}
	return t, nil
}

// parseJWTOptions reads --auth-token; nil for simple tokens.
func parseJWTOptions(spec string, readFile func(string) ([]byte, error), now func() time.Time) (*jwtTokens, error) {
	kind, rest, _ := strings.Cut(spec, ",")
	switch kind {
	case "simple":
		return nil, nil
	case "jwt":
	default:
		return nil, fmt.Errorf("--auth-token %q: want simple or jwt,...", spec)
	}
	opts := map[string]string{}
	for _, kv := range strings.Split(rest, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			opts[k] = v
		} else if kv != "" {
			return nil, fmt.Errorf("--auth-token: bad option %q: want key=value", kv)
		}
	}
	t := &jwtTokens{method: jwt.GetSigningMethod(opts["sign-method"]), ttl: jwtDefaultTTL, now: now}
	if t.method == nil {
		return nil, fmt.Errorf("--auth-token: unknown sign-method %q", opts["sign-method"])
	}
	if d, ok := opts["ttl"]; ok {
		ttl, err := time.ParseDuration(d)
		if err != nil || ttl <= 0 {
			return nil, fmt.Errorf("--auth-token: bad ttl %q", d)
		}
		t.ttl = ttl
	}
	return t, t.loadKeys(opts["pub-key"], opts["priv-key"], readFile)
}

func (t *jwtTokens) loadKeys(pubFile, privFile string, readFile func(string) ([]byte, error)) error {
	read := func(name, path string) ([]byte, error) {
		b, err := readFile(path)
		if err != nil {
			return nil, fmt.Errorf("--auth-token %s: %w", name, err)
		}
		return b, nil
	}
	var err error
	switch t.method.(type) {
	case *jwt.SigningMethodHMAC:
		// One secret both signs and verifies: etcd reads it from priv-key.
		if t.signKey, err = read("priv-key", privFile); err != nil {
			return err
		}
		t.verifyKey = t.signKey
		return nil
	}
	pub, err := read("pub-key", pubFile)
	if err != nil {
		return err
	}
	if t.verifyKey, err = parsePublicKey(t.method, pub); err != nil {
		return fmt.Errorf("--auth-token pub-key %s: %w", pubFile, err)
	}
	if privFile == "" {
		return nil
	}
	priv, err := read("priv-key", privFile)
	if err != nil {
		return err
	}
	if t.signKey, err = parsePrivateKey(t.method, priv); err != nil {
		return fmt.Errorf("--auth-token priv-key %s: %w", privFile, err)
	}
	return nil
}

func parsePublicKey(m jwt.SigningMethod, b []byte) (crypto.PublicKey, error) {
	switch m.(type) {
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		return jwt.ParseRSAPublicKeyFromPEM(b)
	case *jwt.SigningMethodECDSA:
		return jwt.ParseECPublicKeyFromPEM(b)
	case *jwt.SigningMethodEd25519:
		return jwt.ParseEdPublicKeyFromPEM(b)
	}
	return nil, fmt.Errorf("unsupported sign-method %s", m.Alg())
}

func parsePrivateKey(m jwt.SigningMethod, b []byte) (crypto.PrivateKey, error) {
	switch m.(type) {
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		return jwt.ParseRSAPrivateKeyFromPEM(b)
	case *jwt.SigningMethodECDSA:
		return jwt.ParseECPrivateKeyFromPEM(b)
	case *jwt.SigningMethodEd25519:
		return jwt.ParseEdPrivateKeyFromPEM(b)
	}
	return nil, fmt.Errorf("unsupported sign-method %s", m.Alg())
}

// sign issues a token for user at auth revision rev.
func (t *jwtTokens) Sign(user string, rev uint64) (string, error) {
	if t.signKey == nil {
		return "", fmt.Errorf("this member has no --auth-token priv-key to sign tokens with")
	}
	claims := jwt.MapClaims{"username": user, "revision": rev, "exp": t.now().Add(t.ttl).Unix()}
	return jwt.NewWithClaims(t.method, claims).SignedString(t.signKey)
}

// Verify returns the user and auth revision of a valid, unexpired token.
func (t *jwtTokens) Verify(token string) (string, uint64, bool) {
	now := t.now()
	t.mu.Lock()
	v, seen := t.verified[token]
	t.mu.Unlock()
	if !seen {
		var ok bool
		if v, ok = t.parse(token, now); !ok {
			return "", 0, false
		}
		t.remember(token, v)
	}
	if !v.validAt(now) {
		return "", 0, false
	}
	return v.user, v.rev, true
}

// parse checks a token in full at now: signature, method, claims.
func (t *jwtTokens) parse(token string, now time.Time) (verifiedToken, bool) {
	parsed, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return t.verifyKey, nil },
		jwt.WithValidMethods([]string{t.method.Alg()}), jwt.WithExpirationRequired(), jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil || !parsed.Valid {
		return verifiedToken{}, false
	}
	claims, ok := parsed.Claims.(jwt.MapClaims)
	if !ok {
		return verifiedToken{}, false
	}
	user, ok1 := claims["username"].(string)
	rev, ok2 := claims["revision"].(float64)
	exp, err1 := claims.GetExpirationTime()
	nbf, err2 := claims.GetNotBefore()
	if !ok1 || !ok2 || user == "" || exp == nil || err1 != nil || err2 != nil {
		return verifiedToken{}, false
	}
	v := verifiedToken{user: user, rev: uint64(rev), exp: exp.Time}
	if nbf != nil {
		v.nbf = nbf.Time
	}
	return v, true
}

// remember keeps a token that verified, within jwtVerifiedMax.
func (t *jwtTokens) remember(token string, v verifiedToken) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.verified == nil || len(t.verified) >= jwtVerifiedMax {
		t.verified = map[string]verifiedToken{}
	}
	t.verified[token] = v
}
