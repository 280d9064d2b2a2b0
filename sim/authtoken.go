package sim

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"
)

// Auth tokens: with auth on, a world's members issue simple tokens (core
// keeps them) or etcd's JWT tokens, signed and checked by the server's
// provider (server.Config.TokenProvider), with keys from memory and
// expiry on the virtual clock. Every member has the same keys, so a
// token from one is good at all, as with etcd.

// jwtTokens reports whether the world's members issue JWT tokens: as the
// option says, or, left empty, for half the seeds (a hash of the seed).
func (o Options) jwtTokens() bool {
	switch o.AuthToken {
	case "jwt":
		return true
	case "simple":
		return false
	}
	return seedHash(o.Seed^0x1a7)%2 == 0
}

// The JWT key files the members' --auth-token names; which signs is
// chosen from the seed: an Ed25519 key pair or an HMAC secret.
const (
	jwtPrivFile   = "jwt.key"
	jwtPubFile    = "jwt.pub"
	jwtSecretFile = "jwt.secret"
)

// authTokenFlag is the members' --auth-token.
func (o Options) authTokenFlag() string {
	if !o.jwtTokens() {
		return "simple"
	}
	if seedHash(o.Seed^0x5e1)%2 == 0 {
		return "jwt,priv-key=" + jwtSecretFile + ",sign-method=HS256,ttl=5m"
	}
	return "jwt,pub-key=" + jwtPubFile + ",priv-key=" + jwtPrivFile + ",sign-method=EdDSA"
}

// jwtKeySeed makes the world's Ed25519 key, the same in every run.
var jwtKeySeed = [ed25519.SeedSize]byte{'d', 'e', 't', 'c', 'd', '-', 's', 'i', 'm'}

// readKeyFile reads the JWT key files from memory.
func readKeyFile(path string) ([]byte, error) {
	key := ed25519.NewKeyFromSeed(jwtKeySeed[:])
	switch path {
	case jwtSecretFile:
		return jwtKeySeed[:], nil
	case jwtPrivFile:
		der, err := x509.MarshalPKCS8PrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), err
	case jwtPubFile:
		der, err := x509.MarshalPKIXPublicKey(key.Public())
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), err
	}
	return nil, fmt.Errorf("sim: no key file %s", path)
}

// virtualClock is the world's time as a clock, for the JWT tokens'
// expiry.
func (w *World) virtualClock() time.Time { return time.UnixMicro(w.now) }
