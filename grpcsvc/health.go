package grpcsvc

import (
	"context"
	"errors"

	"google.golang.org/grpc/status"
)

// CheckRead is the read etcd's health checks make, as root: a view of the
// key space, serializable or linearizable. It fails with etcd's error in
// etcd's words, without the gRPC status around them, as /health and
// /readyz print it.
func CheckRead(ctx context.Context, b Backend, serializable bool) error {
	if _, _, _, err := readView(ctx, b, serializable); err != nil {
		return errors.New(status.Convert(err).Message())
	}
	return nil
}
