package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/corrupt"
)

// The hash request between members, etcd's GET /members/hashkv, which
// the corruption checks send: its three steps (the asking member's
// request, the peer's answer, the asking member's reading of it) apart,
// so that the simulator runs the same ones around its own network.

// hashKVRequestBytesMax bounds a hash request's body (etcd's is a
// revision in JSON).
const hashKVRequestBytesMax = 4 << 10

// NewHashKVRequest is the request a member of clusterID sends the peer
// at peerURL for its hash at rev (0: its current revision).
func NewHashKVRequest(ctx context.Context, peerURL string, clusterID uint64, rev int64) (*http.Request, error) {
	body, err := json.Marshal(&pb.HashKVRequest{Revision: rev})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(peerURL, "/")+pathHashKV, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(headerClusterID, hexID(clusterID))
	return req, nil
}

// ReadHashKVAnswer reads a peer's answer to a hash request: the peer's
// current revision, its compaction's, its hash; etcd's errors as core's.
func ReadHashKVAnswer(resp *http.Response) (corrupt.Reply, error) {
	if resp.StatusCode != http.StatusOK {
		return corrupt.Reply{}, hashKVError(statusError(resp))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, hashKVAnswerBytesMax))
	if err != nil {
		return corrupt.Reply{}, err
	}
	var r pb.HashKVResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return corrupt.Reply{}, fmt.Errorf("bad hash reply: %w", err)
	}
	return corrupt.Reply{Revision: r.GetHeader().GetRevision(), CompactRevision: r.CompactRevision, Hash: r.Hash}, nil
}

// hashKVAnswerBytesMax bounds what is read of a hash answer (a few
// numbers in JSON).
const hashKVAnswerBytesMax = 4 << 10

// askHashKV asks the member at a peer URL for its hash at rev, waiting
// at most timeout.
func (d peerDialer) askHashKV(peerURL string, clusterID uint64, rev int64, timeout time.Duration) (corrupt.Reply, error) {
	c, err := d.client(peerURL)
	if err != nil {
		return corrupt.Reply{}, err
	}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := NewHashKVRequest(ctx, c.base, clusterID, rev)
	if err != nil {
		return corrupt.Reply{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return corrupt.Reply{}, err
	}
	defer resp.Body.Close()
	return ReadHashKVAnswer(resp)
}

// hashKVError reads etcd's errors from a peer's hash answer.
func hashKVError(err error) error {
	var se *peerStatusError
	if !errors.As(err, &se) {
		return err
	}
	for _, known := range []struct {
		code int
		err  error
	}{
		{http.StatusBadRequest, core.ErrCompacted},
		{http.StatusBadRequest, core.ErrFutureRev},
		{http.StatusPreconditionFailed, errClusterMismatch},
	} {
		if se.code == known.code && strings.Contains(se.text, known.err.Error()) {
			return known.err
		}
	}
	return fmt.Errorf("unknown error: %w", err)
}

// hashKVHandler answers etcd's GET /members/hashkv for a member of
// ClusterID: its hash at the revision asked (0: its current), from
// Hashes, and etcd's errors as etcd's. The peer endpoints' handler
// serves it (peerhttp.go), on the listeners and in the simulator.
type hashKVHandler struct {
	Log       *slog.Logger
	ClusterID uint64
	// Hashes is the member's hash at a revision, and its current
	// revision.
	Hashes func(ctx context.Context, rev int64) (h mvcc.KVHash, current int64, err error)
}

func (h hashKVHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !onlyGet(w, r) {
		return
	}
	if got := r.Header.Get(headerClusterID); got != "" && got != hexID(h.ClusterID) {
		http.Error(w, errClusterMismatch.Error(), http.StatusPreconditionFailed)
		return
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, hashKVRequestBytesMax))
	if err != nil {
		http.Error(w, "error reading body", http.StatusBadRequest)
		return
	}
	var req pb.HashKVRequest
	if err := json.Unmarshal(b, &req); err != nil {
		http.Error(w, "error unmarshalling request", http.StatusBadRequest)
		return
	}
	kh, rev, err := h.Hashes(r.Context(), req.Revision)
	if err != nil {
		h.Log.Warn("failed to get hashKV", "requested-revision", req.Revision, "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	out, err := json.Marshal(&pb.HashKVResponse{Header: &pb.ResponseHeader{Revision: rev}, Hash: kh.Hash,
		CompactRevision: int64(kh.CompactRev), HashRevision: int64(kh.Rev)})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set(headerClusterID, hexID(h.ClusterID))
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}
