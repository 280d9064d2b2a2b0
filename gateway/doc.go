// Package gateway is etcd's JSON gateway: the v3 API as JSON over HTTP
// POST on the client port (/v3/kv/put, /v3/watch, ...), in the shape
// etcd's grpc-gateway gives it: protobuf field names, 64-bit integers as
// strings, bytes in base64, errors as {"code", "message"} with the HTTP
// status of the gRPC code, and streams as newline-delimited
// {"result": ...} objects.
//
// It owns no state: every request becomes a call on a gRPC client
// connection to the member's own gRPC server, so the gateway sees exactly
// what gRPC clients see, interceptors included. A client's token comes in
// the Authorization header, as with etcd.
package gateway
