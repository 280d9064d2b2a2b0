package watch

import (
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core/mvcc"
)

// benchmarkDelivery measures delivering one put to every watcher of a
// key: watchers spread over streams, sent as soon as they are made. A
// stream with more watchers than StreamResponsesMax leaves the rest to
// catch up, so that is part of what is measured.
func benchmarkDelivery(b *testing.B, watchers, streams int) {
	store := mvcc.New()
	h := New(store, func(rev int64) *pb.ResponseHeader { return &pb.ResponseHeader{Revision: rev} })
	for i := 0; i < watchers; i++ {
		sid := StreamID(i%streams + 1)
		h.Open(sid)
		h.Request(sid, &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("k")}}})
	}
	for _, o := range h.Take() {
		h.Credit(o.Stream, o.Bytes)
	}
	value := make([]byte, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tx := store.Write()
		tx.Put([]byte("k"), value, 0)
		rev := tx.End()
		h.Notify(int64(rev), tx)
		for {
			for _, o := range h.Take() {
				h.Credit(o.Stream, o.Bytes)
			}
			if !h.Pending() {
				break
			}
			h.Step(1 << 20)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*watchers), "ns/event")
}

func BenchmarkDelivery1000WatchersOneStream(b *testing.B)      { benchmarkDelivery(b, 1000, 1) }
func BenchmarkDelivery1000WatchersHundredStreams(b *testing.B) { benchmarkDelivery(b, 1000, 100) }

// BenchmarkCatchUp measures a watcher catching up on 10,000 past events.
func BenchmarkCatchUp(b *testing.B) {
	store := mvcc.New()
	for i := 0; i < 10000; i++ {
		tx := store.Write()
		tx.Put([]byte(fmt.Sprintf("k%d", i%100)), []byte("v"), 0)
		tx.End()
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		h := New(store, func(rev int64) *pb.ResponseHeader { return &pb.ResponseHeader{Revision: rev} })
		h.Open(1)
		h.Request(1, &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("k"), RangeEnd: []byte("l"), StartRevision: 1}}})
		for h.Pending() {
			h.Step(1 << 20)
			for _, o := range h.Take() {
				h.Credit(o.Stream, o.Bytes)
			}
		}
	}
}
