package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// tlsHandshakeTimeout bounds a client's TLS handshake: one that stalls
// past it is dropped, as net/http drops a request that stalls.
const tlsHandshakeTimeout = 10 * time.Second

// etcd's messages for a refused TLS handshake.
const (
	rejectedClient = "rejected connection on client endpoint"
	rejectedPeer   = "rejected connection on peer endpoint"
)

// tlsAcceptedMax is how many handshaken connections wait for Accept.
const tlsAcceptedMax = 64

// handshakeListener is a TLS listener that completes each handshake
// before Accept returns the connection, as etcd's does, so that a refused
// one is logged with etcd's message ("rejected connection on client
// endpoint", which etcd's tests and operators look for) instead of
// net/http's. Accept still returns a *tls.Conn: net/http negotiates
// HTTP/2 (and so gRPC) from its state, and its own handshake call returns
// at once.
type handshakeListener struct {
	net.Listener
	cfg      *tls.Config
	log      *slog.Logger
	rejected string // the message of a failed handshake

	accepted chan net.Conn
	done     chan struct{}
	errOnce  sync.Once
	err      error
}

// newHandshakeListener serves TLS on ln; rejected is etcd's message for a
// failed handshake on this kind of endpoint.
func newHandshakeListener(ln net.Listener, cfg *tls.Config, log *slog.Logger, rejected string) net.Listener {
	l := &handshakeListener{Listener: ln, cfg: cfg, log: log, rejected: rejected,
		accepted: make(chan net.Conn, tlsAcceptedMax), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

func (l *handshakeListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			l.errOnce.Do(func() { l.err = err; close(l.done) })
			return
		}
		go l.handshake(tls.Server(c, l.cfg))
	}
}

// handshake completes c's handshake and hands it to Accept, or logs why
// it failed and closes it.
func (l *handshakeListener) handshake(c *tls.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimeout)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		l.logRejected(c, err)
		c.Close()
		return
	}
	select {
	case l.accepted <- c:
	case <-l.done:
		c.Close()
	}
}

// logRejected logs a failed handshake with etcd's message and fields; a
// client that went away (EOF) at debug level, as etcd does.
func (l *handshakeListener) logRejected(c *tls.Conn, err error) {
	level := slog.LevelWarn
	if errors.Is(err, io.EOF) {
		level = slog.LevelDebug
	}
	state := c.ConnectionState()
	attrs := []any{"remote-addr", c.RemoteAddr().String(), "server-name", state.ServerName}
	if len(state.PeerCertificates) > 0 {
		cert := state.PeerCertificates[0]
		ips := make([]string, len(cert.IPAddresses))
		for i, ip := range cert.IPAddresses {
			ips[i] = ip.String()
		}
		attrs = append(attrs, "ip-addresses", ips, "dns-names", cert.DNSNames)
	}
	l.log.Log(context.Background(), level, l.rejected, append(attrs, "error", err)...)
}

// Accept returns the next connection whose handshake succeeded.
func (l *handshakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.accepted:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// Close stops accepting and closes the handshaken connections that no
// Accept took.
func (l *handshakeListener) Close() error {
	err := l.Listener.Close()
	<-l.done
	for {
		select {
		case c := <-l.accepted:
			c.Close()
		default:
			return err
		}
	}
}
