package sim

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/status"

	"github.com/detcd/detcd/core"
)

// kaStream is a lease holder's keep-alive stream, as clientv3 keeps one
// (requiring a leader): opened on a member when the holder has none, it
// carries the holder's keep-alives, one at a time, until it breaks (the
// member crashed, refused or ended it, or a keep-alive went unanswered
// and the holder hung up); the next keep-alive opens another, on a
// member drawn afresh. Its server side is a task running the Lease
// service's KeepAliveSession, as the gRPC handler does.
type kaStream struct {
	c *leaseClient
	m *member
	// inc is the member's incarnation the handler runs in.
	inc int
	// ended is set once the client knows the stream ended, or left it.
	ended bool
	// cancel ends the handler's context, once it runs: the client hung up.
	cancel context.CancelFunc
	// reqs reached the member and wait for the handler's Recv; arrived
	// is the handler waiting for one.
	reqs    []*pb.LeaseKeepAliveRequest
	arrived *signal
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
	w.trace.logf(w.now, "l%d opens a keep-alive stream on %s", c.id, m.name)
	w.after(w.settings.Net.LatencyMinUs, m.event(func() {
		w.with(m, c.login, func(token string, failed *core.Response) {
			switch {
			case s.ended:
			case failed != nil:
				s.closed(failed.Err)
			default:
				m.serveStream(streamContext(token, true), keepAliveMethod, s.serve, s.closed)
			}
		})
	}))
	return s
}

// serve is the stream's gRPC handler, LeaseKeepAlive: the session's
// steps over what the client sends.
func (s *kaStream) serve(ctx context.Context) error {
	if s.ended {
		return errStreamGone
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.inc = s.m.inc
	sess := s.m.svc.Lease.OpenKeepAlive(s.send)
	for {
		req, err := s.recv(ctx)
		if done, err := sess.Step(ctx, req, err); done {
			return err
		}
	}
}

// recv is the handler's Recv: the next request that reached the member,
// or the error gRPC's gives when the client hung up, or the member's
// when it stopped.
func (s *kaStream) recv(ctx context.Context) (*pb.LeaseKeepAliveRequest, error) {
	for len(s.reqs) == 0 {
		s.arrived = s.m.newSignal(s.inc)
		if err := s.arrived.Wait(ctx); err != nil {
			s.arrived = nil
			if ctx.Err() != nil {
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			return nil, rpctypes.ErrGRPCStopped
		}
	}
	req := s.reqs[0]
	s.reqs = s.reqs[1:]
	return req, nil
}

// deliver is a request reaching the member.
func (s *kaStream) deliver(req *pb.LeaseKeepAliveRequest) {
	s.reqs = append(s.reqs, req)
	if a := s.arrived; a != nil {
		s.arrived = nil
		a.Fire()
	}
}

// send is the handler's Send: the answer reaches the client after the
// network.
func (s *kaStream) send(r *pb.LeaseKeepAliveResponse) error {
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
	w.trace.logf(w.now, "l%d hangs up its keep-alive stream on %s", s.c.id, s.m.name)
	w.after(w.settings.Net.LatencyMinUs, func() {
		if s.cancel == nil {
			return // the handler never ran, or sees ended when it does
		}
		s.cancel()
		if a := s.arrived; a != nil {
			s.arrived = nil
			a.wake()
		}
	})
}

// closed is the client learning that the stream ended with err: the
// keep-alive in flight gets it, and the next one opens another stream.
func (s *kaStream) closed(err error) {
	if s.ended {
		return
	}
	s.ended = true
	c := s.c
	c.w.trace.logf(c.w.now, "l%d keep-alive stream on %s ended: %v", c.id, s.m.name, err)
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
