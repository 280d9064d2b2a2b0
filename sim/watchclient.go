package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/watch"
)

// watchClient is a simulated client with one watcher: it watches a key,
// a group's prefix or everything, maybe from a past revision, with random
// filters and prev_kv, reads its stream (sometimes slowly), and when its
// member dies it resumes on another from the revision after the last it
// saw, as clientv3 does.
type watchClient struct {
	w      *World
	id     int
	rng    *rand.Rand
	member *member
	stream watch.StreamID
	open   bool
	// srv is the open stream's server side.
	srv *watchServer
	// requireLeader: the client's streams require a leader, as
	// Kubernetes' do (clientv3.WithRequireLeader).
	requireLeader bool
	// watchID is the open stream's watcher, once created (else -1);
	// canceling is set once the client asked to cancel it.
	watchID   int64
	canceling bool
	// login is the watcher's session as the app user (or, now and then,
	// a user of limited permissions), with auth on; askedAt is when it
	// last asked for a watcher.
	login   *login
	askedAt int64
	// What is watched.
	key, end       string
	noPut, noDel   bool
	prevKV         bool
	progressNotify bool
	fragment       bool
	start          int64
	// from is the revision the open stream's watcher started at.
	from int64
	// What was seen.
	begun      bool  // a watcher was created
	expectFrom int64 // the first revision the watcher is owed
	last       int64 // every revision up to here has been delivered
	sessions   int
	log        []watchRecord
	slow       bool
	// holes are the revisions [from, to) a compaction took: the watcher
	// asked to start there and was told to restart at the compaction.
	holes [][2]int64
	// fragments are the pieces of a response still coming.
	fragments []*mvccpb.Event
}

// watchRecord is one response as the client got it.
type watchRecord struct {
	at       int64
	progress bool
	rev      int64 // header revision
	events   []*mvccpb.Event
	cancel   string
	// created marks a watcher's creation from revision from;
	// compactRev, a cancel as compacted there.
	created    bool
	from       int64
	compactRev int64
}

func newWatchClient(w *World, id int) *watchClient {
	c := &watchClient{w: w, id: id, rng: w.child(), login: newLogin(appUser)}
	s := w.settings
	switch c.rng.IntN(3) {
	case 0:
		g := c.rng.IntN(s.KeyGroups)
		c.key = groupKey(g, c.rng.IntN(s.KeysPerGroup))
	case 1:
		g := c.rng.IntN(s.KeyGroups)
		c.key, c.end = fmt.Sprintf("g%02d/", g), fmt.Sprintf("g%02d0", g)
	default:
		c.key, c.end = "g", "h"
	}
	c.noPut = c.rng.IntN(8) == 0
	c.noDel = !c.noPut && c.rng.IntN(8) == 0
	c.prevKV = c.rng.IntN(2) == 0
	c.progressNotify = c.rng.IntN(2) == 0
	c.fragment = c.rng.IntN(2) == 0
	c.slow = c.rng.IntN(3) == 0
	c.requireLeader = c.rng.IntN(2) == 0
	return c
}

func (c *watchClient) startWatching() {
	w := c.w
	// Start in the past now and then, once there is a past.
	c.w.after(c.w.between(0, 5_000_000), func() {
		if c.rng.IntN(2) == 0 {
			c.start = c.w.checks.maxRev / 2
		}
		c.connect(c.start)
	})
	_ = w
}

// connect opens a stream on a random member and creates the watcher from
// revision from (0: from now).
func (c *watchClient) connect(from int64) {
	w := c.w
	if w.stopping && c.sessions > 0 {
		return
	}
	live := w.live()
	m := live[c.rng.IntN(len(live))]
	if !m.up {
		w.after(500_000, func() { c.connect(from) })
		return
	}
	w.nextStream++
	c.askedAt = w.now
	c.member, c.stream, c.open, c.srv, c.from, c.fragments = m, w.nextStream, true, nil, from, nil
	c.watchID, c.canceling = -1, false
	c.sessions++
	m.streams[c.stream] = c
	req := &pb.WatchCreateRequest{Key: []byte(c.key), RangeEnd: []byte(c.end), StartRevision: from, PrevKv: c.prevKV, ProgressNotify: c.progressNotify, Fragment: c.fragment}
	if c.noPut {
		req.Filters = append(req.Filters, pb.WatchCreateRequest_NOPUT)
	}
	if c.noDel {
		req.Filters = append(req.Filters, pb.WatchCreateRequest_NODELETE)
	}
	stream := c.stream
	w.trace.logf(w.now, "w%d watch [%s,%s) from %d on %s (stream %d)", c.id, c.key, c.end, from, m.name, stream)
	ctx, cancel := context.WithCancel(context.Background())
	srv := &watchServer{cancel: cancel, serverStream: &serverStream{in: &inbox{},
		send: func(msg any) error { return c.send(stream, msg.(*pb.WatchResponse)) }}}
	c.srv = srv
	srv.in.put(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: req}})
	w.after(c.w.settings.Net.LatencyMinUs, m.event(func() {
		w.with(m, c.login, func(token string, failed *core.Response) {
			if c.stream != stream || !c.open {
				return // the stream broke while the client logged in
			}
			if failed != nil || !m.up {
				c.retry(from)
				return
			}
			m.serveStream(streamContext(ctx, token, c.requireLeader), watchRPC, srv.serverStream,
				func(err error) { c.ended(stream, err) })
		})
	}))
	c.scheduleProgressRequest(stream)
}

// retry opens the stream again, from the same revision, after an
// attempt that never started (its login or its token refused): that
// attempt does not count as a session.
func (c *watchClient) retry(from int64) {
	c.leave()
	c.sessions--
	c.w.after(c.w.between(10_000, 500_000), func() { c.connect(from) })
}

// watchServer is a stream's server side, as the Watch handler has it,
// and the client's cancel of the stream's context.
type watchServer struct {
	*serverStream
	cancel context.CancelFunc
}

// opened says whether the handler opened its session: it took the
// client's create.
func (s *watchServer) opened() bool { return s.in.taken > 0 }

// leave is the client giving up its stream: after the network, the
// stream's context ends, as gRPC's does when its client cancels.
func (c *watchClient) leave() {
	c.open = false
	if srv := c.srv; srv != nil {
		w := c.w
		w.after(w.settings.Net.LatencyMinUs, func() { srv.in.hangUp(srv.cancel) })
	}
}

// ended is the client learning that stream ended with err: refused when
// it opened (no session), it tries again from where it asked; else it
// resumes, as after a broken stream.
func (c *watchClient) ended(stream watch.StreamID, err error) {
	if !c.open || c.stream != stream {
		return
	}
	c.w.trace.logf(c.w.now, "w%d stream %d ended: %v", c.id, stream, err)
	if !c.srv.opened() {
		if authRefused(err) {
			c.login.forget()
		}
		c.retry(c.from)
		return
	}
	c.broken()
}

// errStreamGone: the client left the stream; the handler's send fails.
var errStreamGone = errors.New("sim: watch stream closed by the client")

// send is the handler's stream.Send: the response reaches the client
// after the network. A slow client reads late, and flow control holds
// the handler meanwhile, so the member's credit for the stream runs low.
func (c *watchClient) send(stream watch.StreamID, r *pb.WatchResponse) error {
	w := c.w
	if !c.open || c.stream != stream {
		return errStreamGone
	}
	w.after(w.settings.Net.LatencyMinUs, func() {
		if c.open && c.stream == stream {
			c.receive(r)
		}
	})
	if c.slow {
		w.sleep(w.between(100_000, 1_000_000))
	}
	return nil
}

// cancelOdds: one in cancelOdds of the client's requests on a stream
// cancels its watcher (as clientv3 does when its caller cancels the
// watch); the client then watches again from where it got to.
const cancelOdds = 8

// scheduleProgressRequest sends, now and then, a progress request, or
// a cancel of the watcher.
func (c *watchClient) scheduleProgressRequest(stream watch.StreamID) {
	c.w.after(c.w.between(1_000_000, 4_000_000), func() {
		if !c.open || c.stream != stream || c.w.stopping {
			return
		}
		if srv := c.srv; srv.opened() && !c.canceling && len(srv.in.msgs) < inboxMax {
			req := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}
			if c.watchID >= 0 && c.rng.IntN(cancelOdds) == 0 {
				c.canceling = true
				c.w.trace.logf(c.w.now, "w%d cancels watcher %d (stream %d)", c.id, c.watchID, stream)
				req = &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: c.watchID}}}
			}
			c.member.event(func() { srv.in.put(req) })()
		}
		c.scheduleProgressRequest(stream)
	})
}

// canceled is the answer to the client's cancel: it leaves the stream
// and watches again, on a new one, from the revision after the last it
// saw.
func (c *watchClient) canceled() {
	w := c.w
	c.leave()
	w.trace.logf(w.now, "w%d watcher canceled; resume from %d", c.id, c.last+1)
	w.after(w.between(10_000, 500_000), func() { c.connect(c.last + 1) })
}

func (c *watchClient) receive(r *pb.WatchResponse) {
	w := c.w
	if r.Fragment {
		// A revision too big for one response comes in pieces: the
		// client joins them, as clientv3 does.
		c.fragments = append(c.fragments, r.Events...)
		return
	}
	events := append(c.fragments, r.Events...)
	c.fragments = nil
	rec := watchRecord{at: w.now, rev: r.Header.GetRevision(), events: events, cancel: r.CancelReason}
	switch {
	case r.Created && r.Canceled && authReason(r.CancelReason):
		// The member did not take the token (a restart lost it): log
		// in again and resume.
		c.login.forget()
		w.trace.logf(w.now, "w%d watch refused: %s", c.id, r.CancelReason)
		c.retry(c.from)
		return
	case r.Created && r.Canceled && r.CancelReason == rpctypes.ErrGRPCPermissionDenied.Error():
		// The user may not read the keys: the permission checker judges
		// whether rightly; the client tries again, as an administrator
		// may grant them.
		w.checks.perm.watchCreated(c, true)
		w.trace.logf(w.now, "w%d watch refused: %s", c.id, r.CancelReason)
		c.retry(c.from)
		return
	case r.Created && r.Canceled:
		w.checks.fail("w%d: watch creation refused: %s", c.id, r.CancelReason)
		c.leave()
		return
	case r.Canceled && r.CompactRevision != 0:
		c.compacted(r.CompactRevision, rec.rev)
		return
	case r.Canceled && c.canceling:
		c.canceled()
		return
	case r.Created:
		w.checks.perm.watchCreated(c, false)
		c.log = append(c.log, watchRecord{at: w.now, rev: rec.rev, created: true, from: c.from})
		c.watchID = r.WatchId
		c.begin(rec.rev)
		return
	case len(events) == 0:
		rec.progress = true
		c.last = max(c.last, rec.rev)
	default:
		c.last = max(c.last, events[len(events)-1].Kv.ModRevision)
	}
	c.log = append(c.log, rec)
	w.trace.logf(w.now, "w%d got %s", c.id, describeWatch(r))
}

// broken is the stream's member dying: the client resumes elsewhere.
func (c *watchClient) broken() {
	if !c.open {
		return
	}
	c.open = false
	c.w.trace.logf(c.w.now, "w%d stream %d broken; resume from %d", c.id, c.stream, c.last+1)
	c.w.after(c.w.between(10_000, 500_000), func() { c.connect(c.last + 1) })
}

func describeWatch(r *pb.WatchResponse) string {
	s := fmt.Sprintf("rev %d", r.Header.GetRevision())
	if len(r.Events) == 0 {
		return s + " progress"
	}
	for _, ev := range r.Events {
		s += fmt.Sprintf(" %s %s@%d", ev.Type, ev.Kv.Key, ev.Kv.ModRevision)
	}
	return s
}

// begin sets what the first watcher is owed: from its start revision, or
// (from now) after the revision its creation reports.
func (c *watchClient) begin(rev int64) {
	if c.begun {
		return
	}
	c.begun = true
	if c.from == 0 {
		c.expectFrom, c.last = rev+1, rev
	} else {
		c.expectFrom, c.last = c.from, c.from-1
	}
}

// compacted is etcd's legal answer to a watcher that needs revisions a
// compaction took, starting from one or fallen behind: it is canceled
// with the compaction's revision, and the client resumes there, as
// clientv3's users do; the revisions between are lost.
func (c *watchClient) compacted(compactRev, rev int64) {
	w := c.w
	c.begin(rev)
	c.leave()
	c.log = append(c.log, watchRecord{at: w.now, rev: rev, compactRev: compactRev})
	next := c.last + 1
	if compactRev <= next {
		w.checks.fail("w%d: watch owed %d on canceled as compacted at %d, at or below that", c.id, next, compactRev)
		return
	}
	if _, ok := w.checks.compactedAbove(next, w.now, false); !ok {
		w.checks.fail("w%d: watch owed %d on canceled as compacted at %d, but no compaction above %d was applied", c.id, next, compactRev, next)
		return
	}
	c.holes = append(c.holes, [2]int64{next, compactRev})
	c.last = compactRev - 1
	w.trace.logf(w.now, "w%d watch owed %d on compacted at %d; resume there", c.id, next, compactRev)
	w.after(w.between(10_000, 500_000), func() { c.connect(compactRev) })
}
