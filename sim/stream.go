package sim

import (
	"context"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/metadata"
)

// Streams (watch, lease keep-alive) reach a member as gRPC streams do: a
// task runs the service's session through the guard's stream checks (a
// learner refuses them; one that requires a leader is refused without
// one, and ended by the guard once the member has been without one for
// long), and the client learns, after the network, what the stream ended
// with.

// gRPC names of the streams the simulated clients open.
const (
	watchMethod     = "/etcdserverpb.Watch/Watch"
	keepAliveMethod = "/etcdserverpb.Lease/LeaseKeepAlive"
)

// streamContext is the context a client's stream reaches a member with:
// its token, and, when it asks, etcd's require-leader metadata
// (clientv3.WithRequireLeader, which clientv3's keep-alives use).
func streamContext(token string, requireLeader bool) context.Context {
	var kv []string
	if token != "" {
		kv = append(kv, "token", token)
	}
	if requireLeader {
		kv = append(kv, rpctypes.MetadataRequireLeaderKey, rpctypes.MetadataHasLeader)
	}
	if len(kv) == 0 {
		return context.Background()
	}
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs(kv...))
}

// serveStream runs handler, method's session on m, as a task through the
// guard's stream checks, as the gRPC server's interceptor runs a stream's
// handler; ended gets, after the network, the error the stream ended
// with (nil: the handler ended it cleanly).
func (m *member) serveStream(ctx context.Context, method string, handler func(context.Context) error, ended func(error)) {
	w, guard := m.w, m.guard
	if !m.up || guard == nil {
		w.after(w.settings.Net.LatencyMinUs, func() { ended(rpctypes.ErrGRPCStopped) })
		return
	}
	w.spawn(func() {
		err := guard.Stream(ctx, method, handler)
		w.after(w.settings.Net.LatencyMinUs, func() { ended(err) })
	})
}

// monitorLeader lets the guard check, once per election timeout as the
// server does, whether the member has a leader: it ends the streams that
// require one after a few checks without. Their handlers may wait on
// the member, unaware of their context: they are woken to see it ended.
func (m *member) monitorLeader() {
	w, inc := m.w, m.inc
	everyUs := int64(w.settings.ElectionTicks) * w.settings.TickUs
	var check func()
	check = func() {
		if m.inc != inc || !m.up {
			return
		}
		if !m.paused && m.guard.CheckLeader() > 0 {
			w.trace.logf(w.now, "%s ends the streams that require a leader", m.name)
			m.wakeWaits()
		}
		w.after(everyUs, check)
	}
	w.after(everyUs, check)
}
