package grpcsvc

import (
	"testing"

	"google.golang.org/grpc/encoding"
)

// TestGzipRegistered: etcd's server decodes gzip-compressed requests, so
// a client that compresses must not get Unimplemented. The registry is
// global, so this test must not import the gzip package itself.
func TestGzipRegistered(t *testing.T) {
	if encoding.GetCompressor("gzip") == nil {
		t.Fatal("gzip compressor not registered by grpcsvc")
	}
}
