package grpcsvc

import (
	"crypto/sha256"
	"hash"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/detcd/detcd/core"
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
	w := &snapshotSender{ss: ss, hdr: resp.Header, left: uint64(int64(size)+pad) + sha256.Size, sum: sha256.New()}
	if err := resp.Backup.Write(w); err != nil {
		return err
	}
	if _, err := w.Write(make([]byte, pad)); err != nil {
		return err
	}
	if err := w.flush(); err != nil {
		return err
	}
	if w.left != sha256.Size {
		return status.Errorf(codes.Internal, "snapshot: the state changed size between two writes of one view")
	}
	return ss.Send(&pb.SnapshotResponse{Header: resp.Header, Blob: w.sum.Sum(nil), Version: storageVersion})
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// snapshotSender cuts what is written into messages of
// snapshotChunkBytes.
type snapshotSender struct {
	ss   pb.Maintenance_SnapshotServer
	hdr  *pb.ResponseHeader
	buf  []byte
	left uint64 // bytes after those sent, the hash included
	sum  hash.Hash
}

func (w *snapshotSender) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, snapshotChunkBytes)
		}
		k := min(len(p), snapshotChunkBytes-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == snapshotChunkBytes {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *snapshotSender) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	w.sum.Write(w.buf)
	w.left -= uint64(len(w.buf))
	err := w.ss.Send(&pb.SnapshotResponse{Header: w.hdr, RemainingBytes: w.left, Blob: w.buf, Version: storageVersion})
	w.buf = nil // Send may keep the slice until the message is encoded
	return err
}
