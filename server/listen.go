package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// listen opens a listener for a client, peer or metrics URL: a TCP port,
// or for unix:// and unixs:// a socket file named by the rest of the URL
// (unix://localhost:2379 is the file "localhost:2379"), as etcd's.
func listen(rawURL string) (net.Listener, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	network, addr := "tcp", u.Host
	if u.Scheme == "unix" || u.Scheme == "unixs" {
		network, addr = "unix", u.Host+u.Path
		// A socket file left by an earlier run would refuse the listen.
		if err := os.Remove(addr); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("listen on %s: %w", rawURL, err)
		}
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", rawURL, err)
	}
	return ln, nil
}

// secureURL reports whether a URL's scheme asks for TLS.
func secureURL(u string) bool {
	return strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "unixs://")
}

// http2Preface opens every HTTP/2 (and so gRPC) connection.
var http2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// prefaceTimeout bounds how long a new connection may take to say which
// protocol it speaks.
const prefaceTimeout = 10 * time.Second

// splitListener hands each connection of ln to one of two listeners by
// its first bytes, which it replays: sniff reads at most peekMax of them
// and says whether the connection goes to yes; ok is false for a
// connection that closed before saying anything.
type splitListener struct {
	ln      net.Listener
	yes, no *chanListener
	peekMax int
	sniff   func(r *bufio.Reader) (yes, ok bool)
}

func newSplitListener(ln net.Listener, peekMax int, sniff func(*bufio.Reader) (yes, ok bool)) *splitListener {
	return &splitListener{ln: ln, yes: newChanListener(ln), no: newChanListener(ln), peekMax: peekMax, sniff: sniff}
}

func (sp *splitListener) serve() {
	for {
		c, err := sp.ln.Accept()
		if err != nil {
			sp.yes.close(err)
			sp.no.close(err)
			return
		}
		go sp.route(c)
	}
}

func (sp *splitListener) route(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(prefaceTimeout))
	r := bufio.NewReaderSize(c, sp.peekMax)
	yes, ok := sp.sniff(r)
	_ = c.SetReadDeadline(time.Time{})
	if !ok {
		c.Close()
		return
	}
	buffered, _ := r.Peek(r.Buffered())
	pc := &prefixConn{Conn: c, prefix: append([]byte(nil), buffered...)}
	if yes {
		sp.yes.deliver(pc)
		return
	}
	sp.no.deliver(pc)
}

// newConnMux serves gRPC and HTTP/1 on one port, as etcd's client port
// does: a connection that opens with the HTTP/2 preface goes to gRPC's
// own server (faster than gRPC over net/http), yes; anything else to
// net/http, no.
func newConnMux(ln net.Listener) *splitListener {
	return newSplitListener(ln, len(http2Preface), sniffHTTP2)
}

func sniffHTTP2(r *bufio.Reader) (yes, ok bool) {
	for n := 1; n <= len(http2Preface); n++ {
		b, err := r.Peek(n)
		if err != nil {
			return false, len(b) > 0
		}
		if !bytes.Equal(b, http2Preface[:n]) {
			return false, true
		}
	}
	return true, true
}

// prefixConn replays the bytes read to sniff the protocol.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// chanListener is a net.Listener fed by the mux.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
	err   error
}

func newChanListener(ln net.Listener) *chanListener {
	return &chanListener{addr: ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

func (l *chanListener) close(err error) {
	l.once.Do(func() {
		if err == nil {
			err = net.ErrClosed
		}
		l.err = err
		close(l.done)
	})
}

func (l *chanListener) Close() error {
	l.close(net.ErrClosed)
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
