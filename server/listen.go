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

// connMux serves gRPC and HTTP/1 on one port, as etcd's client port does:
// a connection that opens with the HTTP/2 preface goes to gRPC's own
// server (faster than gRPC over net/http), anything else to net/http.
type connMux struct {
	ln   net.Listener
	grpc *chanListener
	http *chanListener
}

func newConnMux(ln net.Listener) *connMux {
	return &connMux{ln: ln, grpc: newChanListener(ln), http: newChanListener(ln)}
}

func (m *connMux) serve() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			m.grpc.close(err)
			m.http.close(err)
			return
		}
		go m.route(c)
	}
}

func (m *connMux) route(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(prefaceTimeout))
	r := bufio.NewReaderSize(c, len(http2Preface))
	isGRPC := true
	for n := 1; n <= len(http2Preface); n++ {
		b, err := r.Peek(n)
		if err != nil {
			if len(b) == 0 {
				c.Close()
				return
			}
			isGRPC = false
			break
		}
		if !bytes.Equal(b, http2Preface[:n]) {
			isGRPC = false
			break
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	buffered, _ := r.Peek(r.Buffered())
	pc := &prefixConn{Conn: c, prefix: append([]byte(nil), buffered...)}
	if isGRPC {
		m.grpc.deliver(pc)
	} else {
		m.http.deliver(pc)
	}
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
