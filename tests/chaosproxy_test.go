package tests

// chaosProxy stands in front of one member's peer listener: the member
// advertises the proxy's address as its peer URL, and every other member
// connects through it. Members dial from their own loopback IP
// (--feature-gates SetMemberLocalAddr=true), so the proxy knows which
// member each connection comes from and can cut a directed link: refuse
// its connections (they are reset at once), or drop them (they stay open
// and everything sent on them is lost, as on a network that lost the
// route, until the link heals and they are closed).

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

type cutMode int

const (
	cutRefuse cutMode = iota + 1
	cutDrop
)

func (m cutMode) String() string {
	if m == cutDrop {
		return "drop"
	}
	return "refuse"
}

type chaosProxy struct {
	ln     net.Listener
	target string // the member's real peer listener

	mu     sync.Mutex
	cuts   map[string]cutMode // by source IP
	conns  map[*proxyConn]struct{}
	closed bool
	wg     sync.WaitGroup

	accepted, refused, dropped atomic.Int64
}

type proxyConn struct {
	src      string
	down, up net.Conn // from the peer; to the member (nil while dropped from the start)
	drop     atomic.Bool
	closed   atomic.Bool
	once     sync.Once
}

func (c *proxyConn) close() {
	c.once.Do(func() {
		c.closed.Store(true)
		c.down.Close()
		if c.up != nil {
			c.up.Close()
		}
	})
}

// newChaosProxy listens on addr and forwards to target.
func newChaosProxy(addr, target string) (*chaosProxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &chaosProxy{ln: ln, target: target, cuts: map[string]cutMode{}, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *chaosProxy) addr() string { return p.ln.Addr().String() }

func (p *chaosProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		src, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		pc := &proxyConn{src: src, down: c}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		mode := p.cuts[src]
		if mode == cutRefuse {
			p.mu.Unlock()
			p.refused.Add(1)
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // a reset, as a refusing host sends
			}
			c.Close()
			continue
		}
		p.conns[pc] = struct{}{}
		pc.drop.Store(mode == cutDrop)
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(pc)
	}
}

func (p *chaosProxy) serve(pc *proxyConn) {
	defer p.wg.Done()
	defer func() {
		pc.close()
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
	}()
	if pc.drop.Load() {
		p.dropped.Add(1)
		discard(pc.down)
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		return // the member is down: the peer sees the connection close
	}
	p.mu.Lock()
	if p.closed || pc.closed.Load() {
		p.mu.Unlock()
		up.Close()
		return
	}
	pc.up = up
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { pump(pc.up, pc.down, &pc.drop); done <- struct{}{} }()
	go func() { pump(pc.down, pc.up, &pc.drop); done <- struct{}{} }()
	<-done
	pc.close()
	<-done
}

// pump copies from src to dst until either fails; while drop is set it
// reads and throws away.
func pump(dst, src net.Conn, drop *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !drop.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func discard(c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// cut cuts the link from the member at src to this proxy's member.
func (p *chaosProxy) cut(src string, mode cutMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cuts[src] = mode
	for pc := range p.conns {
		if pc.src != src {
			continue
		}
		if mode == cutRefuse {
			pc.close()
		} else {
			pc.drop.Store(true)
		}
	}
}

// heal restores the link from src: connections that lost data while it
// was cut are closed, so that both ends start over.
func (p *chaosProxy) heal(src string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.cuts, src)
	for pc := range p.conns {
		if pc.src == src && pc.drop.Load() {
			pc.close()
		}
	}
}

func (p *chaosProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.ln.Close()
	for pc := range p.conns {
		pc.close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
