package server

import (
	"bufio"
	"net"
	"net/http"
	"net/url"
)

// clientListener is one client address and the traffic etcd serves on
// it: http and https URLs may share an address (a connection that opens
// with a TLS handshake is served over TLS, any other in the clear), and
// --listen-client-http-urls split HTTP from gRPC.
type clientListener struct {
	net.Listener
	addr             string // the URL's address: host:port or socket file
	secure, insecure bool
	httpOnly         bool // a --listen-client-http-urls address
	grpcOnly         bool // a client URL while --listen-client-http-urls are set
}

// urlAddr is the address a URL listens on, without its scheme.
func urlAddr(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Host + u.Path
}

// openClients listens once on each client address, whatever the schemes
// of the URLs naming it: the --listen-client-urls and
// --listen-client-http-urls.
func (l *listeners) openClients(clientURLs, httpURLs []string) error {
	split := len(httpURLs) > 0
	add := func(u string, httpOnly bool) error {
		for i := range l.clients {
			if cl := &l.clients[i]; cl.addr == urlAddr(u) && cl.httpOnly == httpOnly {
				cl.secure, cl.insecure = cl.secure || secureURL(u), cl.insecure || !secureURL(u)
				return nil
			}
		}
		ln, err := listen(u)
		if err != nil {
			return err
		}
		l.clients = append(l.clients, clientListener{Listener: ln, addr: urlAddr(u), secure: secureURL(u),
			insecure: !secureURL(u), httpOnly: httpOnly, grpcOnly: split && !httpOnly})
		return nil
	}
	for _, u := range clientURLs {
		if err := add(u, false); err != nil {
			return err
		}
	}
	for _, u := range httpURLs {
		if err := add(u, true); err != nil {
			return err
		}
	}
	return nil
}

// serveClient serves one client address.
func (l *listeners) serveClient(cl clientListener, srv clientServers) {
	var ln net.Listener = cl
	if cl.secure && cl.insecure {
		sp := newTLSSplit(cl)
		go sp.serve()
		l.serveSecure(cl, sp.yes, srv)
		l.serveInsecure(cl, sp.no, srv)
		return
	}
	if cl.secure {
		l.serveSecure(cl, ln, srv)
		return
	}
	l.serveInsecure(cl, ln, srv)
}

// serveSecure serves TLS as etcd does: net/http negotiates HTTP/2 and
// hands gRPC requests to the gRPC server, so browsers and curl reach
// /health on the same port.
func (l *listeners) serveSecure(cl clientListener, ln net.Listener, srv clientServers) {
	go func() { _ = srv.http.Serve(newHandshakeListener(ln, l.tls, l.log, rejectedClient)) }()
	logServingClients(l.log, cl.Addr().String(), true, cl.traffic())
}

// serveInsecure serves the clear: gRPC by the HTTP/2 preface, the rest as
// HTTP, or only one of them on a split address.
func (l *listeners) serveInsecure(cl clientListener, ln net.Listener, srv clientServers) {
	switch {
	case cl.grpcOnly:
		go func() { _ = srv.grpc.Serve(ln) }()
	case cl.httpOnly:
		go func() { _ = srv.http.Serve(ln) }()
	default:
		m := newConnMux(ln)
		go func() { _ = srv.grpc.Serve(m.yes) }()
		go func() { _ = srv.http.Serve(m.no) }()
		go m.serve()
	}
	logServingClients(l.log, cl.Addr().String(), false, cl.traffic())
}

// traffic is what etcd's log says a listener serves.
func (cl clientListener) traffic() string {
	switch {
	case cl.grpcOnly:
		return "grpc"
	case cl.httpOnly:
		return "http"
	}
	return "grpc+http"
}

// splitAt reports, for a request over TLS on a split address, whether the
// gRPC or the HTTP side may serve it (the clear sides never mix).
func (l *listeners) splitAt(r *http.Request) (grpcOnly, httpOnly bool) {
	addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false, false
	}
	for _, cl := range l.clients {
		if cl.Addr().String() == addr.String() {
			return cl.grpcOnly, cl.httpOnly
		}
	}
	return false, false
}

// tlsRecordHandshake opens every TLS connection (a handshake record).
const tlsRecordHandshake = 0x16

// newTLSSplit sends the connections of one listener that open with a TLS
// handshake to one side (yes), the others to the other (no), as etcd does
// for http and https URLs on one port.
func newTLSSplit(ln net.Listener) *splitListener {
	return newSplitListener(ln, 16, func(r *bufio.Reader) (yes, ok bool) {
		b, err := r.Peek(1)
		if err != nil {
			return false, false
		}
		return b[0] == tlsRecordHandshake, true
	})
}
