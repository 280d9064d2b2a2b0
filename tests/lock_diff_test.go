package tests

// The Lock and Election services over raw gRPC, differentially: the same
// calls, in the same order, go to a fresh embedded etcd 3.7.3 and a fresh
// detcd, and the transcripts (revisions, keys, values, errors with code
// and message) must be the same. Lease IDs the servers grant themselves
// differ; each side shows them as L1, L2, ... in the order they appear,
// in keys (name/lease in hex) too.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	epb "go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
)

// lockLeaseID is the lease the scenario grants itself.
const lockLeaseID = 100

// TestLockDiff runs the scenario against both servers and compares.
func TestLockDiff(t *testing.T) {
	eaddr, _ := startEmbeddedEtcd(t, true)
	daddr, _ := startInProcDetcd(t, true)
	want := runLockScenario(t, "etcd", eaddr)
	got := runLockScenario(t, "detcd", daddr)
	compareAuthTranscripts(t, want, got)
}

// lockSession is one server's side: its clients, the lease names shown so
// far, and what earlier steps left for later ones.
type lockSession struct {
	t      *testing.T
	s      *side
	lock   v3lockpb.LockClient
	el     epb.ElectionClient
	leases map[int64]string
	// keys and leaders are what Lock and Campaign returned, by step label.
	keys    map[string][]byte
	leaders map[string]*epb.LeaderKey
	// waiting holds calls that block, by label, until they answer.
	waiting  map[string]chan string
	observed epb.Election_ObserveClient
}

type lockStep struct {
	name string
	do   func(s *lockSession, ctx context.Context) string
}

func runLockScenario(t *testing.T, name, addr string) []string {
	sd := dial(t, name, addr, func() {})
	t.Cleanup(sd.close)
	s := &lockSession{t: t, s: sd, lock: v3lockpb.NewLockClient(sd.conn), el: epb.NewElectionClient(sd.conn),
		leases: map[int64]string{}, keys: map[string][]byte{}, leaders: map[string]*epb.LeaderKey{}, waiting: map[string]chan string{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends the observe stream and any call left waiting
	var out []string
	for i, st := range lockScenario() {
		sctx, scancel := context.WithTimeout(ctx, authStepTimeout)
		out = append(out, fmt.Sprintf("%02d %s -> %s", i+1, st.name, st.do(s, sctx)))
		scancel()
	}
	t.Logf("%s: %d steps run", name, len(out))
	return out
}

// lease names a lease ID: the scenario's own as is, others in order of
// appearance.
func (s *lockSession) lease(id int64) string {
	if id == lockLeaseID || id == 0 {
		return strconv.FormatInt(id, 10)
	}
	if n, ok := s.leases[id]; ok {
		return n
	}
	s.leases[id] = fmt.Sprintf("L%d", len(s.leases)+1)
	return s.leases[id]
}

// key shows a lock or election key, name/lease in hex, with the lease
// named.
func (s *lockSession) key(k []byte) string {
	i := strings.LastIndexByte(string(k), '/')
	id, err := strconv.ParseInt(string(k[i+1:]), 16, 64)
	if i < 0 || err != nil {
		return string(k)
	}
	return string(k[:i+1]) + "<" + s.lease(id) + ">"
}

func (s *lockSession) kv(kv *mvccpb.KeyValue) string {
	if kv == nil {
		return "<no kv>"
	}
	return fmt.Sprintf("%s=%s@c%d/m%d/v%d lease=%s", s.key(kv.Key), kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, s.lease(kv.Lease))
}

func (s *lockSession) leader(l *epb.LeaderKey) string {
	if l == nil {
		return "<no leader>"
	}
	return fmt.Sprintf("name=%s key=%s rev=%d lease=%s", l.Name, s.key(l.Key), l.Rev, s.lease(l.Lease))
}

func hdr(h *pb.ResponseHeader) string { return fmt.Sprintf("rev=%d", h.GetRevision()) }

// lockCall locks name under lease, keeping the key as label.
func lockCall(label, name string, lease int64) func(*lockSession, context.Context) string {
	return func(s *lockSession, ctx context.Context) string {
		r, err := s.lock.Lock(ctx, &v3lockpb.LockRequest{Name: []byte(name), Lease: lease})
		if err != nil {
			return errStr(err)
		}
		s.keys[label] = r.Key
		return hdr(r.Header) + " key=" + s.key(r.Key)
	}
}

func unlockCall(label string) func(*lockSession, context.Context) string {
	return func(s *lockSession, ctx context.Context) string {
		r, err := s.lock.Unlock(ctx, &v3lockpb.UnlockRequest{Key: s.keys[label]})
		return res(r, err, func(r *v3lockpb.UnlockResponse) string { return hdr(r.Header) })
	}
}

func campaignCall(label, name, value string, lease int64) func(*lockSession, context.Context) string {
	return func(s *lockSession, ctx context.Context) string {
		r, err := s.el.Campaign(ctx, &epb.CampaignRequest{Name: []byte(name), Value: []byte(value), Lease: lease})
		if err != nil {
			return errStr(err)
		}
		s.leaders[label] = r.Leader
		return hdr(r.Header) + " " + s.leader(r.Leader)
	}
}

func leaderCall(name string) func(*lockSession, context.Context) string {
	return func(s *lockSession, ctx context.Context) string {
		r, err := s.el.Leader(ctx, &epb.LeaderRequest{Name: []byte(name)})
		return res(r, err, func(r *epb.LeaderResponse) string { return hdr(r.Header) + " " + s.kv(r.Kv) })
	}
}

func proclaimCall(label, value string) func(*lockSession, context.Context) string {
	return func(s *lockSession, ctx context.Context) string {
		r, err := s.el.Proclaim(ctx, &epb.ProclaimRequest{Leader: s.leaders[label], Value: []byte(value)})
		return res(r, err, func(r *epb.ProclaimResponse) string { return hdr(r.Header) })
	}
}

func resignCall(label string) func(*lockSession, context.Context) string {
	return func(s *lockSession, ctx context.Context) string {
		r, err := s.el.Resign(ctx, &epb.ResignRequest{Leader: s.leaders[label]})
		return res(r, err, func(r *epb.ResignResponse) string { return hdr(r.Header) })
	}
}

// inBackground starts a call that blocks, as label, and waits until the
// key it queues is there: then prefix holds n keys.
func inBackground(label, prefix string, n int64, f func(*lockSession, context.Context) string) func(*lockSession, context.Context) string {
	return func(s *lockSession, ctx context.Context) string {
		done := make(chan string, 1)
		s.waiting[label] = done
		go func() {
			cctx, cancel := context.WithTimeout(context.Background(), 3*authStepTimeout)
			defer cancel()
			done <- f(s, cctx)
		}()
		for range 500 {
			r, err := s.s.kv.Range(ctx, &pb.RangeRequest{Key: []byte(prefix), RangeEnd: []byte(prefixEnd([]byte(prefix))), CountOnly: true})
			if err != nil {
				return errStr(err)
			}
			if r.Count >= n {
				select {
				case out := <-done:
					return "answered at once: " + out
				default:
					return "waiting"
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		return fmt.Sprintf("no %d keys under %s", n, prefix)
	}
}

// answer is what the background call label answered.
func answer(label string) func(*lockSession, context.Context) string {
	return func(s *lockSession, ctx context.Context) string {
		select {
		case out := <-s.waiting[label]:
			return out
		case <-ctx.Done():
			return "no answer"
		}
	}
}

func observeNext(name string) func(*lockSession, context.Context) string {
	return func(s *lockSession, ctx context.Context) string {
		if s.observed == nil {
			// The stream lives as long as the scenario, not the step.
			o, err := s.el.Observe(context.WithoutCancel(ctx), &epb.LeaderRequest{Name: []byte(name)})
			if err != nil {
				return errStr(err)
			}
			s.t.Cleanup(func() { o.CloseSend() })
			s.observed = o
		}
		r, err := s.observed.Recv()
		return res(r, err, func(r *epb.LeaderResponse) string { return hdr(r.Header) + " " + s.kv(r.Kv) })
	}
}

func grantCall(id, ttl int64) func(*lockSession, context.Context) string {
	return func(s *lockSession, ctx context.Context) string {
		r, err := pb.NewLeaseClient(s.s.conn).LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: id, TTL: ttl})
		return res(r, err, func(r *pb.LeaseGrantResponse) string { return hdr(r.Header) + " lease=" + s.lease(r.ID) })
	}
}

func revokeCall(id int64) func(*lockSession, context.Context) string {
	return func(s *lockSession, ctx context.Context) string {
		r, err := pb.NewLeaseClient(s.s.conn).LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: id})
		return res(r, err, func(r *pb.LeaseRevokeResponse) string { return hdr(r.Header) })
	}
}

// ttlOfKey is the granted TTL of the lease key label is attached to.
func ttlOfKey(label string) func(*lockSession, context.Context) string {
	return func(s *lockSession, ctx context.Context) string {
		g, err := s.s.kv.Range(ctx, &pb.RangeRequest{Key: s.keys[label]})
		if err != nil || len(g.Kvs) != 1 {
			return fmt.Sprintf("range: %v %v", g, err)
		}
		r, err := pb.NewLeaseClient(s.s.conn).LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: g.Kvs[0].Lease})
		return res(r, err, func(r *pb.LeaseTimeToLiveResponse) string {
			return fmt.Sprintf("lease=%s granted=%d", s.lease(r.ID), r.GrantedTTL)
		})
	}
}

func lockScenario() []lockStep {
	return []lockStep{
		{"lock a, no lease", lockCall("a1", "a", 0)},
		{"a1's lease", ttlOfKey("a1")},
		{"grant the scenario's lease", grantCall(lockLeaseID, 30)},
		{"lock a under it (waits for a1)", inBackground("a2", "a/", 2, lockCall("a2", "a", lockLeaseID))},
		{"unlock a1", unlockCall("a1")},
		{"the waiting lock", answer("a2")},
		{"lock a again, same lease", lockCall("a3", "a", lockLeaseID)},
		{"lock b, unknown lease", lockCall("b", "b", 12345)},
		{"lock the empty name", lockCall("empty", "", 0)},
		{"unlock a key that is not there", func(s *lockSession, ctx context.Context) string {
			r, err := s.lock.Unlock(ctx, &v3lockpb.UnlockRequest{Key: []byte("nothing")})
			return res(r, err, func(r *v3lockpb.UnlockResponse) string { return hdr(r.Header) })
		}},
		{"leader of e, none", leaderCall("e")},
		{"proclaim, no leader key", proclaimCall("none", "x")},
		{"resign, no leader key", resignCall("none")},
		{"campaign e=v1 under the lease", campaignCall("e1", "e", "v1", lockLeaseID)},
		{"campaign e=v2, no lease (waits)", inBackground("e2", "e/", 2, campaignCall("e2", "e", "v2", 0))},
		{"leader of e", leaderCall("e")},
		{"observe e", observeNext("e")},
		{"proclaim e=v1b", proclaimCall("e1", "v1b")},
		{"observe e, next", observeNext("e")},
		{"resign e1", resignCall("e1")},
		{"the waiting campaign", answer("e2")},
		{"observe e, after the hand-over", observeNext("e")},
		{"proclaim with e1's old key", proclaimCall("e1", "late")},
		{"resign with e1's old key", resignCall("e1")},
		{"campaign f, unknown lease", campaignCall("f", "f", "v", 12345)},
		{"revoke the scenario's lease", revokeCall(lockLeaseID)},
		{"leader of e, after the revoke", leaderCall("e")},
		{"a's keys after the revoke", func(s *lockSession, ctx context.Context) string {
			r, err := s.s.kv.Range(ctx, &pb.RangeRequest{Key: []byte("a/"), RangeEnd: prefixEnd([]byte("a/"))})
			return res(r, err, func(r *pb.RangeResponse) string {
				var kvs []string
				for _, kv := range r.Kvs {
					kvs = append(kvs, s.kv(kv))
				}
				return hdr(r.Header) + " [" + strings.Join(kvs, " ") + "]"
			})
		}},
	}
}
