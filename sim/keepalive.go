package sim

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
)

// kaStream is a lease holder's keep-alive stream, as clientv3 keeps one
// (requiring a leader; or, for a holder that renews once at a time, one
// per keep-alive, without): opened on a member when the holder has none, it
// carries the holder's keep-alives, one at a time, until it breaks (the
// member crashed, refused or ended it, or a keep-alive went unanswered
// and the holder hung up); the next keep-alive opens another, on a
// member drawn afresh. Its server side is a task running the Lease
// service's KeepAliveSession, as the gRPC handler does.
type kaStream struct {
	c *leaseClient
	m *member
	// ended is set once the client knows the stream ended, or left it.
	ended bool
	// cancel ends the stream's context: the client hung up.
	cancel context.CancelFunc
	// srv is the stream as the handler has it: the keep-alives that
	// reached the member wait in its inbox.
	srv *serverStream
	// answer takes the answer to the keep-alive in flight.
	answer func(*core.Response)
}

// renew sends a keep-alive for lease id on the holder's stream, opening
// one first when none is open. cb gets the answer, an error if the
// stream ended first, or nil if none came within the client timeout;
// the holder then hangs up the stream.
func (c *leaseClient) renew(id int64, cb func(*core.Response)) {
	w := c.w
	if c.ka == nil || c.ka.ended {
		c.ka = c.openKeepAlive()
	}
	s := c.ka
	done := false
	s.answer = func(resp *core.Response) {
		done = true
		if c.once {
			s.leave()
		}
		cb(resp)
	}
	req := &pb.LeaseKeepAliveRequest{ID: id}
	w.after(w.settings.Net.LatencyMinUs, func() { s.deliver(req) })
	w.after(w.settings.ClientTimeoutUs, func() {
		if !done {
			done, s.answer = true, nil
			s.leave()
			cb(nil)
		}
	})
}

// openKeepAlive opens a stream on a member, logging in first with auth
// on.
func (c *leaseClient) openKeepAlive() *kaStream {
	w := c.w
	m := c.member()
	s := &kaStream{c: c, m: m}
	var ctx context.Context
	ctx, s.cancel = context.WithCancel(context.Background())
	s.srv = &serverStream{in: &inbox{}, send: s.send}
	w.trace.logf(w.now, "%s%d opens a keep-alive stream on %s", c.tag(), c.id, m.name)
	w.after(w.settings.Net.LatencyMinUs, m.event(func() {
		w.with(m, c.login, func(token string, failed *core.Response) {
			switch {
			case s.ended:
			case failed != nil:
				s.closed(failed.Err)
			default:
				m.serveStream(streamContext(ctx, token, !c.once), keepAliveRPC, s.srv, s.closed)
			}
		})
	}))
	return s
}

// deliver is a request reaching the member.
func (s *kaStream) deliver(req *pb.LeaseKeepAliveRequest) { s.srv.in.put(req) }

// send is the handler's Send: the answer reaches the client after the
// network.
func (s *kaStream) send(msg any) error {
	r := msg.(*pb.LeaseKeepAliveResponse)
	if s.ended {
		return errStreamGone
	}
	w := s.c.w
	w.after(w.settings.Net.LatencyMinUs, func() {
		if a := s.answer; a != nil && !s.ended {
			s.answer = nil
			a(&core.Response{Msg: r})
		}
	})
	return nil
}

// leave is the client hanging up: after the network, the handler's
// context ends, as gRPC's does when its client cancels the stream.
func (s *kaStream) leave() {
	if s.ended {
		return
	}
	s.ended = true
	w := s.c.w
	w.trace.logf(w.now, "%s%d hangs up its keep-alive stream on %s", s.c.tag(), s.c.id, s.m.name)
	w.after(w.settings.Net.LatencyMinUs, func() { s.srv.in.hangUp(s.cancel) })
}

// closed is the client learning that the stream ended with err: the
// keep-alive in flight gets it, and the next one opens another stream.
func (s *kaStream) closed(err error) {
	if s.ended {
		return
	}
	s.ended = true
	c := s.c
	c.w.trace.logf(c.w.now, "%s%d keep-alive stream on %s ended: %v", c.tag(), c.id, s.m.name, err)
	if authRefused(err) {
		c.login.forget()
	}
	if a := s.answer; a != nil {
		s.answer = nil
		if err == nil {
			a(nil)
			return
		}
		a(&core.Response{Err: err})
	}
}
