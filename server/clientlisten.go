package server

import (
	"bufio"
	"crypto/tls"
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

// openClientListeners listens once on each client address, whatever the
// schemes of the URLs naming it.
func (s *Server) openClientListeners() error {
	split := len(s.cfg.ListenClientHTTPURLs) > 0
	add := func(u string, httpOnly bool) error {
		for i := range s.listeners {
			if cl := &s.listeners[i]; cl.addr == urlAddr(u) && cl.httpOnly == httpOnly {
				cl.secure, cl.insecure = cl.secure || secureURL(u), cl.insecure || !secureURL(u)
				return nil
			}
		}
		ln, err := listen(u)
		if err != nil {
			return err
		}
		s.listeners = append(s.listeners, clientListener{Listener: ln, addr: urlAddr(u), secure: secureURL(u),
			insecure: !secureURL(u), httpOnly: httpOnly, grpcOnly: split && !httpOnly})
		return nil
	}
	for _, u := range s.cfg.ListenClientURLs {
		if err := add(u, false); err != nil {
			return err
		}
	}
	for _, u := range s.cfg.ListenClientHTTPURLs {
		if err := add(u, true); err != nil {
			return err
		}
	}
	return nil
}

// serveClientListener serves one client address.
func (s *Server) serveClientListener(cl clientListener) {
	var ln net.Listener = cl
	if cl.secure && cl.insecure {
		sp := newTLSSplit(cl)
		go sp.serve()
		s.serveSecure(cl, sp.yes)
		s.serveInsecure(cl, sp.no)
		return
	}
	if cl.secure {
		s.serveSecure(cl, ln)
		return
	}
	s.serveInsecure(cl, ln)
}

// serveSecure serves TLS as etcd does: net/http negotiates HTTP/2 and
// hands gRPC requests to the gRPC server, so browsers and curl reach
// /health on the same port.
func (s *Server) serveSecure(cl clientListener, ln net.Listener) {
	go func() { _ = s.http.Serve(tls.NewListener(ln, s.tls.client)) }()
	s.logServingClients(cl.Addr().String(), true, cl.traffic())
}

// serveInsecure serves the clear: gRPC by the HTTP/2 preface, the rest as
// HTTP, or only one of them on a split address.
func (s *Server) serveInsecure(cl clientListener, ln net.Listener) {
	switch {
	case cl.grpcOnly:
		go func() { _ = s.grpc.Serve(ln) }()
	case cl.httpOnly:
		go func() { _ = s.http.Serve(ln) }()
	default:
		m := newConnMux(ln)
		go func() { _ = s.grpc.Serve(m.yes) }()
		go func() { _ = s.http.Serve(m.no) }()
		go m.serve()
	}
	s.logServingClients(cl.Addr().String(), false, cl.traffic())
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
func (s *Server) splitAt(r *http.Request) (grpcOnly, httpOnly bool) {
	addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false, false
	}
	for _, cl := range s.listeners {
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
