package watch

import (
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"pgregory.net/rapid"

	"github.com/detcd/detcd/core/mvcc"
)

// modelWatcher is what a watcher should have received: every event in its
// range and filter from its start, in order.
type modelWatcher struct {
	stream         StreamID
	id             int64
	key, end       string
	start          int64
	noPut, noDel   bool
	prevKV         bool
	got            []*mvccpb.Event
	created        bool
	createdRev     int64
	cancelledRev   int64
	holdingCredits bool
}

func (mw *modelWatcher) wants(ev *mvccpb.Event) bool {
	k := string(ev.Kv.Key)
	in := k == mw.key
	if mw.end != "" {
		in = k >= mw.key && k < mw.end
	}
	if !in {
		return false
	}
	if ev.Type == mvccpb.Event_PUT {
		return !mw.noPut
	}
	return !mw.noDel
}

// TestHubAgainstModel: random writes, watchers from random revisions with
// random filters, streams that stop taking responses for a while; at the
// end every watcher must have got exactly the events of its range and
// filter since its start, each revision's events in one response.
func TestHubAgainstModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		store := mvcc.New()
		h := New(store, func(rev int64) *pb.ResponseHeader { return &pb.ResponseHeader{Revision: rev} })
		h.creditMax = rapid.IntRange(100, 2000).Draw(t, "credit") // small, so streams run out
		h.responsesMax = rapid.IntRange(1, 8).Draw(t, "responsesMax")
		var watchers []*modelWatcher
		held := map[StreamID][]Out{}
		keys := rapid.SampledFrom([]string{"a", "b", "c", "d"})
		deliver := func() {
			for _, o := range h.Take() {
				for _, mw := range watchers {
					if mw.stream != o.Stream || mw.id != o.Resp.WatchId {
						continue
					}
					if o.Resp.Created {
						mw.created, mw.createdRev = true, o.Resp.Header.Revision
					}
					revs := map[int64]int{}
					for _, ev := range o.Resp.Events {
						revs[ev.Kv.ModRevision]++
					}
					if len(revs) > 0 && len(o.Resp.Events) > 0 {
						// Check atomicity below against the full history.
						for r, n := range revs {
							want := 0
							store.ScanEvents(mvcc.Revision(r), func(ev *mvccpb.Event) bool {
								if ev.Kv.ModRevision != r {
									return false
								}
								if mw.wants(ev) {
									want++
								}
								return true
							})
							if n != want {
								t.Fatalf("watcher %d/%d: revision %d in pieces (%d of %d)", mw.stream, mw.id, r, n, want)
							}
						}
					}
					mw.got = append(mw.got, o.Resp.Events...)
				}
				held[o.Stream] = append(held[o.Stream], o)
			}
			for _, mw := range watchers {
				if !mw.holdingCredits {
					for _, o := range held[mw.stream] {
						h.Credit(o.Stream, o.Bytes)
					}
					held[mw.stream] = nil
				}
			}
		}
		t.Repeat(map[string]func(*rapid.T){
			"write": func(t *rapid.T) {
				tx := store.Write()
				for i := rapid.IntRange(1, 3).Draw(t, "n"); i > 0; i-- {
					k := keys.Draw(t, "key")
					if rapid.IntRange(0, 3).Draw(t, "kind") == 0 {
						tx.DeleteRange([]byte(k), nil)
					} else {
						tx.Put([]byte(k), []byte(rapid.StringN(0, 6, -1).Draw(t, "value")), 0)
					}
				}
				changed := len(tx.Changes()) > 0
				rev := tx.End()
				if changed {
					h.Notify(int64(rev), tx)
				}
				deliver()
			},
			"watch": func(t *rapid.T) {
				sid := StreamID(rapid.IntRange(1, 3).Draw(t, "stream"))
				h.Open(sid)
				mw := &modelWatcher{stream: sid, key: keys.Draw(t, "wkey"), start: int64(rapid.IntRange(0, int(store.Rev())+2).Draw(t, "start"))}
				if rapid.Bool().Draw(t, "range") {
					mw.end = "z"
				}
				mw.noPut = rapid.IntRange(0, 5).Draw(t, "noput") == 0
				mw.noDel = rapid.IntRange(0, 5).Draw(t, "nodel") == 0
				mw.prevKV = rapid.Bool().Draw(t, "prevkv")
				cr := &pb.WatchCreateRequest{Key: []byte(mw.key), RangeEnd: []byte(mw.end), StartRevision: mw.start, PrevKv: mw.prevKV}
				if mw.noPut {
					cr.Filters = append(cr.Filters, pb.WatchCreateRequest_NOPUT)
				}
				if mw.noDel {
					cr.Filters = append(cr.Filters, pb.WatchCreateRequest_NODELETE)
				}
				s := h.streams[sid]
				id := s.nextID
				for s.watchers[id] != nil {
					id++
				}
				mw.id = id
				watchers = append(watchers, mw)
				h.Request(sid, &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: cr}})
				deliver()
			},
			"hold": func(t *rapid.T) {
				if len(watchers) == 0 {
					t.Skip()
				}
				mw := watchers[rapid.IntRange(0, len(watchers)-1).Draw(t, "w")]
				for _, o := range watchers {
					if o.stream == mw.stream {
						o.holdingCredits = !mw.holdingCredits
					}
				}
				deliver()
			},
			"step": func(t *rapid.T) {
				h.Step(rapid.IntRange(1, 50).Draw(t, "budget"))
				deliver()
			},
		})
		// Drain: release every stream and catch everyone up.
		for _, mw := range watchers {
			mw.holdingCredits = false
		}
		deliver()
		for i := 0; i < 1000 && (h.Pending() || len(h.unsynced) > 0); i++ {
			h.Step(1 << 20)
			deliver()
		}
		for _, mw := range watchers {
			from := mw.start
			if from == 0 {
				from = mw.createdRev + 1
			}
			var want []string
			store.ScanEvents(mvcc.Revision(max(from, 1)), func(ev *mvccpb.Event) bool {
				if mw.wants(ev) {
					want = append(want, fmt.Sprintf("%s %s=%s@%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision))
				}
				return true
			})
			var got []string
			for _, ev := range mw.got {
				got = append(got, fmt.Sprintf("%s %s=%s@%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision))
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("watcher %d/%d [%s,%s) from %d: got %v, want %v", mw.stream, mw.id, mw.key, mw.end, mw.start, got, want)
			}
		}
	})
}
