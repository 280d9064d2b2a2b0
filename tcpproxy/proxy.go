// Package tcpproxy is etcd's gateway: a layer-4 proxy that hands each
// client connection, byte for byte, to one of a set of etcd endpoints.
//
// It picks endpoints as etcd 3.7's gateway does: among the endpoints not
// marked down, those of the best (lowest) SRV priority; by SRV weight when
// they have weights, else in turn. An endpoint that refuses a connection
// is marked down and the next one is tried, so a client only fails when
// every endpoint is down. Every MonitorInterval the endpoints marked down
// are dialled again, and those that answer are used again.
package tcpproxy

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// DefaultMonitorInterval is how long an endpoint stays down when
// MonitorInterval is zero (etcd's default for an unset interval).
const DefaultMonitorInterval = 5 * time.Minute

// zeroWeightPickPercent is the chance, in percent, that an endpoint of
// weight zero is picked while others of its priority have weights: RFC
// 2782 gives such records "a very small chance", etcd 1 in 100.
const zeroWeightPickPercent = 1

// Endpoint is one address to proxy to, with its SRV priority and weight
// (both zero for endpoints given by address).
type Endpoint struct {
	Addr     string
	Priority uint16
	Weight   uint16
}

// Proxy forwards the connections Listener accepts to Endpoints.
type Proxy struct {
	Listener        net.Listener
	Endpoints       []Endpoint
	MonitorInterval time.Duration
	// Dial connects to an endpoint; nil is net.Dial over TCP.
	Dial   func(addr string) (net.Conn, error)
	Logger *slog.Logger

	mu        sync.Mutex
	down      []bool // by index in Endpoints
	pickCount int    // the turn among endpoints without weights
	conns     map[net.Conn]struct{}
	closed    bool
	done      chan struct{}
	wg        sync.WaitGroup
}

// Serve accepts connections until the listener fails or Close is called,
// and returns why it stopped (nil after Close).
func (p *Proxy) Serve() error {
	p.mu.Lock()
	p.down = make([]bool, len(p.Endpoints))
	p.conns = map[net.Conn]struct{}{}
	p.done = make(chan struct{})
	p.mu.Unlock()
	addrs := make([]string, len(p.Endpoints))
	for i, e := range p.Endpoints {
		addrs[i] = e.Addr
	}
	p.logger().Info("ready to proxy client requests", "endpoints", addrs)
	p.wg.Add(1)
	go p.monitor()
	for {
		in, err := p.Listener.Accept()
		if err != nil {
			if p.isClosed() {
				return nil
			}
			return err
		}
		if !p.track(in) {
			in.Close()
			return nil
		}
		p.wg.Add(1)
		go p.serve(in)
	}
}

// Close stops accepting, closes the connections being proxied and waits
// for their goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	if p.done != nil {
		close(p.done)
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.Listener.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// track records an open connection so that Close can end it; false once
// the proxy is closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) logger() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}

func (p *Proxy) interval() time.Duration {
	if p.MonitorInterval <= 0 {
		return DefaultMonitorInterval
	}
	return p.MonitorInterval
}

func (p *Proxy) dial(addr string) (net.Conn, error) {
	if p.Dial != nil {
		return p.Dial(addr)
	}
	return net.Dial("tcp", addr)
}

// serve connects in to an endpoint and copies both ways until either side
// ends; with every endpoint down it closes in.
func (p *Proxy) serve(in net.Conn) {
	defer p.wg.Done()
	defer p.untrack(in)
	out := p.connect()
	if out == nil || !p.track(out) {
		if out != nil {
			out.Close()
		}
		return
	}
	defer p.untrack(out)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(in, out)
		in.Close() // ends the copy below
	}()
	io.Copy(out, in)
	out.Close() // ends the copy above
	<-copied
}

// connect dials picked endpoints until one answers, marking those that do
// not down; nil when all are down. Each failure marks one more endpoint
// down, so it dials at most len(Endpoints) times.
func (p *Proxy) connect() net.Conn {
	for range p.Endpoints {
		i, ok := p.pick()
		if !ok {
			return nil
		}
		addr := p.Endpoints[i].Addr
		out, err := p.dial(addr)
		if err == nil {
			return out
		}
		p.mu.Lock()
		p.down[i] = true
		p.mu.Unlock()
		p.logger().Warn("deactivated endpoint", "address", addr, "interval", p.interval().String(), "error", err.Error())
	}
	return nil
}

// pick chooses an endpoint that is not down, as etcd's gateway does.
func (p *Proxy) pick() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var weighted, unweighted []int
	best, weightSum := -1, 0
	for i, e := range p.Endpoints {
		if p.down[i] {
			continue
		}
		if best < 0 || int(e.Priority) < best {
			best, weightSum, weighted, unweighted = int(e.Priority), 0, nil, nil
		}
		if int(e.Priority) != best {
			continue
		}
		if e.Weight > 0 {
			weighted = append(weighted, i)
			weightSum += int(e.Weight)
		} else {
			unweighted = append(unweighted, i)
		}
	}
	if len(weighted) > 0 && (len(unweighted) == 0 || rand.IntN(100) >= zeroWeightPickPercent) {
		n := rand.IntN(weightSum)
		for _, i := range weighted {
			if n -= int(p.Endpoints[i].Weight); n < 0 {
				return i, true
			}
		}
	}
	if len(unweighted) == 0 {
		return 0, false
	}
	i := unweighted[p.pickCount%len(unweighted)]
	p.pickCount++
	return i, true
}

// monitor dials the endpoints marked down every interval and marks those
// that answer up again.
func (p *Proxy) monitor() {
	defer p.wg.Done()
	t := time.NewTicker(p.interval())
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		for i, e := range p.Endpoints {
			if p.isDown(i) {
				p.reactivate(i, e.Addr)
			}
		}
	}
}

func (p *Proxy) isDown(i int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down[i]
}

func (p *Proxy) reactivate(i int, addr string) {
	c, err := p.dial(addr)
	if err != nil {
		p.logger().Warn("failed to activate endpoint (stay inactive for another interval)", "address", addr, "interval", p.interval().String(), "error", err.Error())
		return
	}
	c.Close()
	p.mu.Lock()
	p.down[i] = false
	p.mu.Unlock()
	p.logger().Info("activated", "address", addr)
}
