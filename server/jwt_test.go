package server

import (
	"errors"
	"io/fs"
	"testing"
	"time"
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
