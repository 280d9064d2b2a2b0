package grpcsvc

import (
	"crypto/sha256"
	"hash"
	"io"
	"os"
	"path/filepath"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/etcddb"
	"github.com/detcd/detcd/internal/chunk"
)

// snapshotChunkBytes is the blob size of each message of a snapshot
// stream, as etcd's.
const snapshotChunkBytes = 32 << 10

// Snapshot streams the member's state at its applied index as etcd's
// database file, as etcd streams its own, and then the SHA-256 of what it
// sent, which `etcdctl snapshot save` keeps at the end of the file and
// `etcdutl snapshot restore` and `detcd snapshot restore` check. The file
// is written from an immutable view into the backend's scratch file (a
// temporary file in the member's data directory, so that the state is not
// held twice in memory), then streamed and removed.
func (s *maintenanceServer) Snapshot(_ *pb.SnapshotRequest, ss pb.Maintenance_SnapshotServer) error {
	resp, err := s.b.Do(ss.Context(), core.Request{Backup: true})
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return toGRPC(err)
	}
	f, cleanup, err := writeSnapshotFile(s.b.SnapshotScratch, resp.Backup)
	if err != nil {
		return status.Errorf(codes.Internal, "snapshot: %v", err)
	}
	defer cleanup()
	fi, err := f.Stat()
	if err != nil {
		return status.Errorf(codes.Internal, "snapshot: %v", err)
	}
	sender := &snapshotSender{ss: ss, left: uint64(fi.Size()) + sha256.Size, sum: sha256.New()}
	w := &chunk.Writer{Size: snapshotChunkBytes, Send: sender.send}
	if _, err := io.Copy(w, f); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	// As etcd's, the snapshot's responses carry no header.
	return ss.Send(&pb.SnapshotResponse{Blob: sender.sum.Sum(nil), Version: storageVersion})
}

// writeSnapshotFile writes the state as etcd's database file into a new
// scratch file, and returns it open at its start, and what closes and
// removes it.
func writeSnapshotFile(scratch func() (string, func(), error), state *core.Checkpoint) (*os.File, func(), error) {
	ex, kv, err := state.Export()
	if err != nil {
		return nil, nil, err
	}
	path, remove, err := scratch()
	if err != nil {
		return nil, nil, err
	}
	err = etcddb.Write(path, ex, kv)
	var f *os.File
	if err == nil {
		f, err = os.Open(path)
	}
	if err != nil {
		remove()
		return nil, nil, err
	}
	return f, func() {
		f.Close()
		remove()
	}, nil
}

// TempDirScratch makes Snapshot's scratch file in a new temporary
// directory in dir (the data directory), as the server does.
func TempDirScratch(dir string) (string, func(), error) {
	tmp, err := os.MkdirTemp(dir, SnapshotTempPrefix+"*")
	if err != nil {
		return "", nil, err
	}
	return filepath.Join(tmp, "db"), func() { os.RemoveAll(tmp) }, nil
}

// SnapshotTempPrefix starts the name of the temporary directory a
// snapshot is written to in the data directory; one left by a crash may
// be removed.
const SnapshotTempPrefix = "snapshot-tmp-"

// snapshotSender sends the state's chunks, counting down what is left
// and hashing what went.
type snapshotSender struct {
	ss   pb.Maintenance_SnapshotServer
	left uint64 // bytes after those sent, the hash included
	sum  hash.Hash
}

func (w *snapshotSender) send(b []byte) error {
	w.sum.Write(b)
	w.left -= uint64(len(b))
	return w.ss.Send(&pb.SnapshotResponse{RemainingBytes: w.left, Blob: b, Version: storageVersion})
}
