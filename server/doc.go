// Package server is detcd's real driver: it runs one member's core.Node on
// an event-loop goroutine against the wall clock, the os file system and
// real listeners, and serves etcd's gRPC API and HTTP endpoints (/health,
// /version, /metrics) on the client URLs.
//
// TLS (tls.go) stays here too: https URLs get certificates from files,
// reloaded when they change, or generated into the data directory with
// auto TLS. Over TLS the client port is served by net/http, which hands
// HTTP/2 gRPC requests to the gRPC server; in the clear, connections are
// sorted by their first bytes, so gRPC skips net/http.
//
// Concurrency: the loop goroutine alone calls the Node. gRPC handlers reach
// it through a bounded channel of calls and get their response on a
// channel of their own. Log writes go to one WAL goroutine, in order,
// which batches every write waiting into one fsync. Checkpoints are
// written on a goroutine of their own from an immutable view. Serializable
// reads run on the handler's goroutine against a copy-on-write view the
// loop publishes; they go through the loop only when that view is older
// than the member's applied state.
package server
