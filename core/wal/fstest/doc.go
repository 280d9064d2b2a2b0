// Package fstest checks that a wal.FS keeps the contract the WAL relies on,
// so the in-memory FS and the os-backed one cannot drift apart. It only
// checks what is observable without a crash; durability is memfs's own
// tests' business.
package fstest
