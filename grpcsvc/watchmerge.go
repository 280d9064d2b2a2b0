package grpcsvc

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/detcd/detcd/core/watch"
)

// coalesce merges, for each watcher, the event responses that wait
// together in outs into the first of them, up to limit bytes: a stream
// that fell behind its member sends fewer, larger messages, several
// revisions in one response as etcd's catch-up sends them, while a stream
// that keeps up still sends each revision as soon as it is made.
//
// Only plain event responses merge (not a watcher's creation, its
// cancellation, a compaction or a progress notice), a merged response
// carries the newest header, and a response moves only earlier, never
// past another response of its watcher: each watcher's order holds, a
// revision's events stay in one response, and a progress notice still
// comes after every event at or below its revision.
func coalesce(outs []watch.Out, limit int) []watch.Out {
	if len(outs) < 2 {
		return outs
	}
	res := make([]watch.Out, 0, len(outs))
	open := make(map[int64]int, len(outs)) // watch id -> its response in res that takes more
	owned := map[int]bool{}                // responses in res that coalesce made, whose events it may append to
	for _, o := range outs {
		id := o.Resp.WatchId
		if !mergeable(o.Resp) {
			delete(open, id)
			res = append(res, o)
			continue
		}
		i, ok := open[id]
		if !ok || res[i].Bytes+o.Bytes > limit {
			open[id] = len(res)
			res = append(res, o)
			continue
		}
		evs := res[i].Resp.Events
		if !owned[i] {
			// The member's responses may be shared: merge into a copy.
			evs = append(make([]*mvccpb.Event, 0, 2*(len(evs)+len(o.Resp.Events))), evs...)
			owned[i] = true
		}
		res[i].Resp = &pb.WatchResponse{Header: o.Resp.Header, WatchId: id, Events: append(evs, o.Resp.Events...)}
		res[i].Bytes += o.Bytes
	}
	return res
}

// mergeable says whether a response only carries a watcher's events.
func mergeable(r *pb.WatchResponse) bool {
	return len(r.Events) > 0 && r.WatchId >= 0 && !r.Created && !r.Canceled && !r.Fragment &&
		r.CompactRevision == 0 && r.CancelReason == ""
}
