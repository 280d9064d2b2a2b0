package server

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/detcd/detcd/gateway"
)

// gatewayBufBytes is the in-memory connection's buffer.
const gatewayBufBytes = 1 << 20

// gatewayBodySlackBytes: a request's JSON, base64 included, is larger
// than its protobuf, which --max-request-bytes bounds.
const gatewayBodySlackBytes = 1 << 20

// jsonGateway is etcd's JSON gateway (/v3/...): it calls the member's gRPC
// server through an in-memory connection it owns.
type jsonGateway struct {
	ln      *bufconn.Listener
	conn    *grpc.ClientConn
	handler http.Handler
}

func newJSONGateway(maxRequestBytes int) (*jsonGateway, error) {
	g := &jsonGateway{ln: bufconn.Listen(gatewayBufBytes)}
	conn, err := grpc.NewClient("passthrough:///detcd-gateway",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return g.ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.conn = conn
	g.handler = gateway.New(conn, int64(maxRequestBytes)+gatewayBodySlackBytes)
	return g, nil
}

// serve lets the gRPC server take the gateway's calls.
func (g *jsonGateway) serve(srv *grpc.Server) { go func() { _ = srv.Serve(g.ln) }() }

func (g *jsonGateway) close() { g.conn.Close() }
