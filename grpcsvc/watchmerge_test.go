package grpcsvc

import (
	"fmt"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/detcd/detcd/core/watch"
)

// ev is watcher id's response with one event per revision in revs; the
// header carries the last revision.
func ev(id int64, revs ...int64) watch.Out {
	r := &pb.WatchResponse{WatchId: id, Header: &pb.ResponseHeader{Revision: revs[len(revs)-1]}}
	for _, rev := range revs {
		r.Events = append(r.Events, &mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte("k"), ModRevision: rev}})
	}
	return watch.Out{Resp: r, Bytes: 10 * len(revs)}
}

func with(o watch.Out, f func(*pb.WatchResponse)) watch.Out {
	f(o.Resp)
	return o
}

// show writes a response as id:header[revisions]+flags.
func show(outs []watch.Out) string {
	var parts []string
	for _, o := range outs {
		r := o.Resp
		revs := make([]string, len(r.Events))
		for i, e := range r.Events {
			revs[i] = fmt.Sprint(e.Kv.ModRevision)
		}
		s := fmt.Sprintf("%d:%d[%s]", r.WatchId, r.Header.GetRevision(), strings.Join(revs, ","))
		switch {
		case r.Created:
			s += "+created"
		case r.Canceled:
			s += "+canceled"
		case r.CompactRevision != 0:
			s += "+compacted"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func TestCoalesce(t *testing.T) {
	progress := func(id, rev int64) watch.Out {
		return watch.Out{Resp: &pb.WatchResponse{WatchId: id, Header: &pb.ResponseHeader{Revision: rev}}}
	}
	created := func(id int64) watch.Out {
		return watch.Out{Resp: &pb.WatchResponse{WatchId: id, Created: true, Header: &pb.ResponseHeader{Revision: 1}}}
	}
	for _, tc := range []struct {
		name  string
		outs  []watch.Out
		limit int
		want  string
	}{
		{"one response", []watch.Out{ev(1, 5)}, 100, "1:5[5]"},
		{"each watcher's revisions in its first response",
			[]watch.Out{ev(1, 5), ev(2, 5), ev(1, 6), ev(2, 6), ev(1, 7, 7)}, 100,
			"1:7[5,6,7,7] 2:6[5,6]"},
		{"a creation does not take events", []watch.Out{created(1), ev(1, 5), ev(1, 6)}, 100,
			"1:1[]+created 1:6[5,6]"},
		{"nothing moves past its watcher's progress notice",
			[]watch.Out{ev(1, 5), progress(1, 5), ev(1, 6), ev(1, 7)}, 100,
			"1:5[5] 1:5[] 1:7[6,7]"},
		{"events move before a stream's progress notice",
			[]watch.Out{ev(1, 5), progress(-1, 5), ev(1, 6)}, 100,
			"1:6[5,6] -1:5[]"},
		{"nothing moves past a cancellation",
			[]watch.Out{ev(1, 5), with(ev(1, 6), func(r *pb.WatchResponse) { r.Canceled = true }), ev(1, 7)}, 100,
			"1:5[5] 1:6[6]+canceled 1:7[7]"},
		{"a compaction notice stays alone",
			[]watch.Out{ev(1, 5), with(progress(1, 5), func(r *pb.WatchResponse) { r.CompactRevision = 3 }), ev(1, 6)}, 100,
			"1:5[5] 1:5[]+compacted 1:6[6]"},
		{"the limit starts a new response",
			[]watch.Out{ev(1, 5), ev(1, 6), ev(1, 7), ev(1, 8)}, 25,
			"1:6[5,6] 1:8[7,8]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := show(tc.outs)
			got := coalesce(tc.outs, tc.limit)
			if s := show(got); s != tc.want {
				t.Errorf("coalesce(%s) = %s, want %s", in, s, tc.want)
			}
			if s := show(tc.outs); s != in {
				t.Errorf("coalesce changed its input: %s, was %s", s, in)
			}
			bytes := 0
			for _, o := range tc.outs {
				bytes += o.Bytes
			}
			for _, o := range got {
				bytes -= o.Bytes
			}
			if bytes != 0 {
				t.Errorf("credit differs by %d bytes", bytes)
			}
		})
	}
}
