package grpcsvc

import (
	"crypto/sha256"
	"hash"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/internal/chunk"
)

// snapshotChunkBytes is the blob size of each message of a snapshot
// stream, as etcd's.
const snapshotChunkBytes = 32 << 10

// snapshotAlignBytes: clients find the trailing SHA-256 by the file's
// size, which for etcd's database is a whole number of pages: the state is
// padded with zeros to a multiple of this (restore ignores the padding).
const snapshotAlignBytes = 512

// Snapshot streams the member's whole state at its applied index, as
// etcd streams its database file, and then the SHA-256 of what it sent,
// which `etcdctl snapshot save` keeps at the end of the file and
// `detcd snapshot restore` checks. The state is written from an immutable
// view twice: once to learn its size for remaining_bytes, then to send it.
// It is padded to snapshotAlignBytes.
func (s *maintenanceServer) Snapshot(_ *pb.SnapshotRequest, ss pb.Maintenance_SnapshotServer) error {
	resp, err := s.b.Do(ss.Context(), core.Request{Backup: true})
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return toGRPC(err)
	}
	var size countingWriter
	if err := resp.Backup.Write(&size); err != nil {
		return status.Errorf(codes.Internal, "snapshot: %v", err)
	}
	pad := (snapshotAlignBytes - int64(size)%snapshotAlignBytes) % snapshotAlignBytes
	sender := &snapshotSender{ss: ss, hdr: resp.Header, left: uint64(int64(size)+pad) + sha256.Size, sum: sha256.New()}
	w := &chunk.Writer{Size: snapshotChunkBytes, Send: sender.send}
	if err := resp.Backup.Write(w); err != nil {
		return err
	}
	if _, err := w.Write(make([]byte, pad)); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if sender.left != sha256.Size {
		return status.Errorf(codes.Internal, "snapshot: the state changed size between two writes of one view")
	}
	return ss.Send(&pb.SnapshotResponse{Header: resp.Header, Blob: sender.sum.Sum(nil), Version: storageVersion})
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// snapshotSender sends the state's chunks, counting down what is left
// and hashing what went.
type snapshotSender struct {
	ss   pb.Maintenance_SnapshotServer
	hdr  *pb.ResponseHeader
	left uint64 // bytes after those sent, the hash included
	sum  hash.Hash
}

func (w *snapshotSender) send(b []byte) error {
	w.sum.Write(b)
	w.left -= uint64(len(b))
	return w.ss.Send(&pb.SnapshotResponse{Header: w.hdr, RemainingBytes: w.left, Blob: b, Version: storageVersion})
}
