// Package server runs one detcd member for real: the one driver
// (driver.Loop) carries out its core.Node against the wall clock, the os
// file system and real sockets, and the member serves etcd's gRPC API and
// HTTP endpoints (/health, /version, /metrics) on the client URLs.
//
// Server is a small composition around the driver; each part owns its
// state and its file:
//
//   - lifecycle (lifecycle.go, server.go, startlog.go, clusterversion.go):
//     New, Start and Stop, the member's readiness, the fatal error, etcd's
//     start-up lines, the applied cluster version;
//   - memberStatus (status.go): what the loop last published, for
//     everything off the loop; publishedOf decides what that is;
//   - peerTransport (transport.go, peerhttp.go, peersend.go, peerrecv.go,
//     peerwire.go, peerdial.go, peerprobe.go, snapshotrecv.go): the
//     driver.Transport between members over HTTP/1.1, with the peer
//     listeners and etcd's peer endpoints, one sender and one round-trip
//     prober per member, snapshot streams both ways, the join's GET
//     /members and the corruption checks' GET /members/hashkv;
//   - discovery (discovery.go, join.go): joining an existing cluster and
//     etcd's v3 discovery;
//   - listeners (listeners.go, clientlisten.go, listen.go): the client
//     and metrics listeners, unix sockets, and the splits of one port into
//     gRPC and HTTP, TLS and the clear;
//   - clientGRPC (grpc.go): the gRPC server with etcd's services
//     (grpcsvc) over the driver's Frontend, and the guard;
//   - httpEndpoints (http.go, health.go, gateway.go): the net/http
//     servers, the health checks, the JSON gateway, /debug;
//   - metrics (metrics*.go): etcd's Prometheus metrics;
//   - corruptChecks (corrupt.go): the timers of etcd's corruption checks
//     and their peer fetch; package corrupt runs the rounds.
//
// Where a part decides something (health_verdict.go, publishedOf, and
// package corrupt's verdicts), the decision is a function without I/O or
// goroutines, apart from the code that gathers its inputs and acts on it.
//
// TLS (tls.go): https URLs get certificates from files, reloaded when
// they change, or generated into the data directory with auto TLS. Over
// TLS the client port is served by net/http, which hands HTTP/2 gRPC
// requests to the gRPC server; in the clear, connections are sorted by
// their first bytes, so gRPC skips net/http.
//
// Concurrency: the loop goroutine alone touches the node. gRPC handlers
// reach it through the driver's Frontend; other goroutines through
// loopCaller, which posts a function to the loop and waits. The peer
// transport's receive side posts what it takes to the loop, dropping
// messages when the loop is behind. Log writes, checkpoints and snapshot
// streams run off the loop, from immutable inputs. Serializable reads run
// on the handler's goroutine against a copy-on-write view the loop
// publishes.
package server
