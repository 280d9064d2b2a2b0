// Package tests holds detcd's heavy test-only checks: a differential test
// against an embedded real etcd, end-to-end runs of etcdctl against the
// detcd binary, and crash tests of the binary. It is a module of its own so
// that etcd's server and etcdctl stay out of detcd's main go.mod.
package tests
