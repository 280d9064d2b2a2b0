package server

import (
	"errors"
	"io/fs"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestTokenProviderClock: the JWT provider reads its keys through the
// reader it is given and expires tokens by the clock it is given (the
// simulator's are in memory and virtual); simple tokens need none.
func TestTokenProviderClock(t *testing.T) {
	files := map[string][]byte{"secret": []byte("k")}
	read := func(p string) ([]byte, error) {
		if b, ok := files[p]; ok {
			return b, nil
		}
		return nil, fs.ErrNotExist
	}
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	cfg := Config{AuthToken: "simple"}
	if p, err := cfg.TokenProvider(read, clock); p != nil || err != nil {
		t.Fatalf("simple tokens: provider %v, %v; want none", p, err)
	}
	cfg.AuthToken = "jwt,priv-key=missing,sign-method=HS256"
	if _, err := cfg.TokenProvider(read, clock); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a missing key: %v", err)
	}
	cfg.AuthToken = "jwt,priv-key=secret,sign-method=HS256,ttl=1m"
	p, err := cfg.TokenProvider(read, clock)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := p.Sign("alice", 3)
	if err != nil {
		t.Fatal(err)
	}
	if user, rev, ok := p.Verify(tok); !ok || user != "alice" || rev != 3 {
		t.Fatalf("fresh token: %q %d %v", user, rev, ok)
	}
	now = now.Add(2 * time.Minute)
	if _, _, ok := p.Verify(tok); ok {
		t.Fatal("a token past its ttl on the provider's clock still verifies")
	}
}

// TestJWTVerifyCache: a token verified once is judged again as jwt.Parse
// judges it in full, at every instant around its nbf and exp (the cache
// keeps only the signature's verdict); a forged or foreign token never
// verifies; the cache stays within jwtVerifiedMax.
func TestJWTVerifyCache(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	p, err := parseJWTOptions("jwt,priv-key=secret,sign-method=HS256,ttl=1m", func(string) ([]byte, error) { return []byte("k"), nil }, clock)
	if err != nil {
		t.Fatal(err)
	}
	other, err := parseJWTOptions("jwt,priv-key=secret,sign-method=HS256", func(string) ([]byte, error) { return []byte("other"), nil }, clock)
	if err != nil {
		t.Fatal(err)
	}
	signed := func(signer *jwtTokens, claims jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(signer.method, claims).SignedString(signer.signKey)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	plain, err := p.Sign("alice", 3)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		token string
	}{
		{"issued", plain},
		{"not before 1030", signed(p, jwt.MapClaims{"username": "bob", "revision": 4, "exp": 1050, "nbf": 1030})},
		{"expired", signed(p, jwt.MapClaims{"username": "bob", "revision": 4, "exp": 999})},
		{"no exp", signed(p, jwt.MapClaims{"username": "bob", "revision": 4})},
		{"foreign key", signed(other, jwt.MapClaims{"username": "eve", "revision": 4, "exp": 2000})},
		{"forged", plain[:len(plain)-2] + "xx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for sec := int64(1000); sec <= 1070; sec++ {
				now = time.Unix(sec, 0)
				user, rev, ok := p.Verify(tt.token) // from the cache after the first
				full, fullOK := p.parse(tt.token, now)
				if ok != fullOK || ok && (user != full.user || rev != full.rev) {
					t.Fatalf("at %d: Verify %q %d %v, a full check %q %d %v", sec, user, rev, ok, full.user, full.rev, fullOK)
				}
			}
		})
	}
	now = time.Unix(1000, 0)
	for i := 0; i < jwtVerifiedMax+10; i++ {
		if _, _, ok := p.Verify(signed(p, jwt.MapClaims{"username": "u", "revision": i, "exp": 2000})); !ok {
			t.Fatalf("token %d does not verify", i)
		}
	}
	if n := len(p.verified); n > jwtVerifiedMax {
		t.Errorf("%d tokens cached, over jwtVerifiedMax %d", n, jwtVerifiedMax)
	}
}
