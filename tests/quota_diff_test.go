package tests

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/server/v3/embed"
	"google.golang.org/grpc/status"

	"github.com/detcd/detcd/server"
)

// quotaPutsTolerance is how far detcd's count of accepted puts may be from
// etcd's: etcd checks the quota against bolt's file, which grows by pages
// and is only measured at its batch commits (every 100 ms), so it takes a
// few puts beyond its quota, the more the faster they come, and its count
// moves by a few percent from run to run.
const quotaPutsTolerance = 0.10

// TestQuotaDiff fills an embedded etcd and an in-process detcd, both with
// the same --quota-backend-bytes, with the same puts in lockstep until each
// refuses one with NOSPACE, and checks that detcd accepts as many puts as
// etcd, within quotaPutsTolerance. It logs both servers' dbSize and
// dbSizeInUse, taken when the first of them ran out of space, while both
// hold the same data, then after both compacted at their current revision
// and after both defragmented.
func TestQuotaDiff(t *testing.T) {
	cases := []struct {
		name       string
		quotaBytes int64
		valueBytes int
		// keys is how many distinct keys the puts cycle through; 0 gives
		// every put a new key.
		keys int
	}{
		{"new keys, 100 B values", 1 << 20, 100, 0},
		// A larger quota for larger values: etcd measures its file only
		// at its batch commits (every 100 ms), and the puts it takes in
		// between, beyond what its file's size allows, should stay few
		// next to the total.
		{"new keys, 10 KiB values", 16 << 20, 10 << 10, 0},
		{"overwrites of 10 keys, 1 KiB values", 2 << 20, 1 << 10, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eaddr, estop := startEmbeddedEtcd(t, true, func(c *embed.Config) { c.QuotaBackendBytes = tc.quotaBytes })
			daddr, dstop := startInProcDetcd(t, true, func(c *server.Config) { c.QuotaBackendBytes = tc.quotaBytes })
			sides := []*side{dial(t, "etcd", eaddr, estop), dial(t, "detcd", daddr, dstop)}
			defer func() {
				for _, s := range sides {
					s.close()
				}
			}()
			value := bytes.Repeat([]byte("v"), tc.valueBytes)
			accepted := []int{-1, -1} // per side: puts accepted before the first NOSPACE
			var sizes []*pb.StatusResponse
			// No server takes twice as many puts as its quota holds values.
			maxPuts := 2 * int(tc.quotaBytes) / tc.valueBytes
			for i := 0; i <= maxPuts && (accepted[0] < 0 || accepted[1] < 0); i++ {
				key := fmt.Sprintf("/quota/%08d", i)
				if tc.keys > 0 {
					key = fmt.Sprintf("/quota/%08d", i%tc.keys)
				}
				for j, s := range sides {
					if accepted[j] >= 0 {
						continue
					}
					if err := quotaPut(t, s, key, value); err != nil {
						accepted[j] = i
					}
				}
				if sizes == nil && (accepted[0] >= 0 || accepted[1] >= 0) {
					sizes = []*pb.StatusResponse{quotaStatus(t, sides[0]), quotaStatus(t, sides[1])}
				}
			}
			if accepted[0] < 0 || accepted[1] < 0 {
				t.Fatalf("after %d puts: accepted before NOSPACE etcd %d, detcd %d (-1: never refused)", maxPuts, accepted[0], accepted[1])
			}
			e, d := sizes[0], sizes[1]
			t.Logf("quota %d B, %d B values: puts accepted etcd %d, detcd %d (ratio %.3f); at the first NOSPACE %s",
				tc.quotaBytes, tc.valueBytes, accepted[0], accepted[1], float64(accepted[1])/float64(accepted[0]), sizeRatios(e, d))
			if diff := float64(accepted[1]-accepted[0]) / float64(accepted[0]); diff > quotaPutsTolerance || diff < -quotaPutsTolerance {
				t.Errorf("detcd accepted %d puts, etcd %d: %.1f%% apart, more than %.0f%%", accepted[1], accepted[0], 100*diff, 100*quotaPutsTolerance)
			}
			// Compacting frees what the overwritten revisions took, but the
			// file keeps its size until a defragmentation.
			for _, s := range sides {
				rev := quotaStatus(t, s).Header.Revision
				mustDo(t, s, "compact", func() error {
					_, err := s.kv.Compact(ctxT(t, 20*time.Second), &pb.CompactionRequest{Revision: rev, Physical: true})
					return err
				})
			}
			t.Logf("compacted: %s", sizeRatios(quotaStatus(t, sides[0]), quotaStatus(t, sides[1])))
			for _, s := range sides {
				mustDo(t, s, "defragment", func() error {
					_, err := s.mt.Defragment(ctxT(t, 20*time.Second), &pb.DefragmentRequest{})
					return err
				})
			}
			t.Logf("defragmented: %s", sizeRatios(quotaStatus(t, sides[0]), quotaStatus(t, sides[1])))
		})
	}
}

// quotaPut puts key and returns nil, or the NOSPACE error; any other error
// fails the test.
func quotaPut(t *testing.T, s *side, key string, value []byte) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := s.kv.Put(ctx, &pb.PutRequest{Key: []byte(key), Value: value})
	if err != nil && status.Convert(err).Message() != status.Convert(rpctypes.ErrGRPCNoSpace).Message() {
		t.Fatalf("%s: put %s: %v", s.name, key, err)
	}
	return err
}

// sizeRatios shows etcd's and detcd's dbSize and dbSizeInUse, and how
// detcd's compare.
func sizeRatios(e, d *pb.StatusResponse) string {
	return fmt.Sprintf("dbSize etcd %d, detcd %d (ratio %.3f), dbSizeInUse etcd %d, detcd %d (ratio %.3f)",
		e.DbSize, d.DbSize, float64(d.DbSize)/float64(e.DbSize),
		e.DbSizeInUse, d.DbSizeInUse, float64(d.DbSizeInUse)/float64(e.DbSizeInUse))
}

func quotaStatus(t *testing.T, s *side) *pb.StatusResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := s.mt.Status(ctx, &pb.StatusRequest{})
	if err != nil {
		t.Fatalf("%s: status: %v", s.name, err)
	}
	return st
}
