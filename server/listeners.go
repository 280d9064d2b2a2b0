package server

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"

	"google.golang.org/grpc"
)

// listeners owns the member's client and metrics listeners (the peer
// listeners are the peer transport's): one client listener per address,
// whatever the schemes of the URLs naming it (clientlisten.go), the
// sniffing splits that sort its connections into gRPC and HTTP, TLS and
// the clear (listen.go), and unix sockets. The servers they feed belong
// to the gRPC and HTTP parts.
type listeners struct {
	log     *slog.Logger
	tls     *tls.Config // the client side's; nil without TLS
	clients []clientListener
	metrics []net.Listener
}

// clientServers are what the client listeners feed: gRPC's own server
// for gRPC in the clear, net/http for HTTP and for anything over TLS.
type clientServers struct {
	grpc *grpc.Server
	http *http.Server
}

// serveMetrics serves the --listen-metrics-urls with srv at once.
func (l *listeners) serveMetrics(urls []string, srv *http.Server) error {
	for _, u := range urls {
		ln, err := listen(u)
		if err != nil {
			return err
		}
		l.metrics = append(l.metrics, ln)
		if secureURL(u) {
			ln = newHandshakeListener(ln, l.tls, l.log, rejectedClient)
		}
		go func() { _ = srv.Serve(ln) }()
		l.log.Info("serving metrics", "address", ln.Addr().String())
	}
	return nil
}

// serveClients serves every client address.
func (l *listeners) serveClients(srv clientServers) {
	for _, cl := range l.clients {
		l.serveClient(cl, srv)
	}
}

// logClients logs the client addresses, as etcd does before it serves
// them.
func (l *listeners) logClients() {
	for _, cl := range l.clients {
		l.log.Info("listening for client requests", "address", cl.Addr().String())
	}
}

// clientAddrs are the addresses the member listens for clients on.
func (l *listeners) clientAddrs() []string {
	var out []string
	for _, cl := range l.clients {
		out = append(out, cl.Addr().String())
	}
	return out
}

func (l *listeners) close() {
	for _, cl := range l.clients {
		cl.Close()
	}
	for _, ln := range l.metrics {
		ln.Close()
	}
}
