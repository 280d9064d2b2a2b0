// Package testpki writes throwaway certificates for TLS tests: a CA, a
// key pair for 127.0.0.1 and localhost that servers and clients both
// use, a client key pair, and a stranger's key pair from a CA nobody
// trusts. Tests only: the keys are written unencrypted.
package testpki
