package driver

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal/memfs"
	"github.com/detcd/detcd/disk"
	"github.com/detcd/detcd/snapresume"
)

func openDisk(t *testing.T, fs *memfs.FS) *disk.Disk {
	t.Helper()
	cfg := core.Config{ID: 1, ClusterID: 100, ProposalEpoch: 1 << 40,
		Members: []core.Member{{ID: 1, Name: "m1", PeerURLs: []string{"http://127.0.0.1:2380"}}}}
	_, dk, err := disk.Open(fs, "data", cfg, disk.Options{SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return dk
}

// rot flips a bit of a file that is not durable (memfs.FlipBit takes
// durable bytes only).
func rot(t *testing.T, fs *memfs.FS, name string, off int) {
	t.Helper()
	b, err := fs.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 8
	f, err := fs.Create(name)
	if err == nil {
		_, err = f.Write(b)
	}
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// snapMsg is a MsgSnap from the leader of term, member term.
func snapMsg(index, term uint64) *raftpb.Message {
	return &raftpb.Message{Type: raftpb.MsgSnap.Enum(), Term: &term, From: &term,
		Snapshot: &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: &index, Term: &term}}}
}

// snapContent is a snapshot's content: a head naming the index, then
// n bytes of store that are the same at every index.
func snapContent(index uint64, n int) []byte {
	b := fmt.Appendf(nil, "index %08d", index)
	for i := range n {
		b = append(b, byte(i%253))
	}
	return b
}

// stream sends content to r as a sender would, resuming from r's offer,
// and stops after cutAt bytes of content (-1: streams it all and the sum).
func stream(t *testing.T, r *SnapshotReceiver, content []byte, cutAt int) (*ResumeWriter, *ReceivedFile, error) {
	t.Helper()
	offer, err := r.Offer()
	if err != nil {
		t.Logf("offer: %v", err)
	}
	rw := &ResumeWriter{Offer: offer, Send: func(b []byte) error { _, err := r.Write(b); return err }, Skip: r.Held}
	end := len(content)
	if cutAt >= 0 {
		end = cutAt
	}
	if _, err := rw.Write(content[:end]); err != nil {
		return rw, nil, err
	}
	if err := rw.Flush(); err != nil || cutAt >= 0 {
		return rw, nil, err
	}
	f, err := r.Finish(SnapshotSum{Bytes: int64(len(content)), CRC: crc32.Checksum(content, castagnoli)})
	return rw, f, err
}

func TestSnapshotResumes(t *testing.T) {
	const mib = snapresume.ChunkBytes
	tests := []struct {
		name string
		// the first transfer, cut after cut bytes, then the second
		firstIndex, secondIndex uint64
		cut                     int
		flip                    bool // a bit of the partial's second chunk rots
		wantHeld                int64
	}{
		{"same snapshot, the same leader again", 10, 10, 2*mib + 5, false, 2 * mib},
		{"a new leader's snapshot of the same data", 10, 12, 3*mib + 5, false, 2 * mib},
		{"a rotten partial chunk is resent", 10, 12, 3*mib + 5, true, mib},
		{"a cut before one whole chunk", 10, 12, mib / 2, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := memfs.New()
			dk := openDisk(t, fs)
			ps := NewSnapshotPartials(dk)
			first := snapContent(tt.firstIndex, 4*mib)
			r, err := ps.Receive(snapMsg(tt.firstIndex, 2))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := stream(t, r, first, tt.cut); err != nil {
				t.Fatal(err)
			}
			r.Abort()
			kept := ps.Kept()
			if len(kept) != 1 || kept[0].Bytes != int64(tt.cut) {
				t.Fatalf("kept %v, want one partial of %d bytes", kept, tt.cut)
			}
			if tt.flip {
				rot(t, fs, kept[0].Name, 24+mib+100)
			}
			second := snapContent(tt.secondIndex, 4*mib)
			r, err = ps.Receive(snapMsg(tt.secondIndex, 3))
			if err != nil {
				t.Fatal(err)
			}
			rw, f, err := stream(t, r, second, -1)
			if err != nil {
				t.Fatal(err)
			}
			if rw.HeldBytes != tt.wantHeld || rw.HeldBytes+rw.SentBytes != int64(len(second)) {
				t.Fatalf("held %d sent %d bytes, want %d held", rw.HeldBytes, rw.SentBytes, tt.wantHeld)
			}
			got, err := dk.ReadReceived(f.Name, tt.secondIndex)
			if err != nil || !bytes.Equal(got, second) {
				t.Fatalf("the received file differs from what was sent (%v)", err)
			}
			if kept := ps.Kept(); len(kept) != 0 {
				t.Fatalf("partials left after a whole snapshot: %v", kept)
			}
			names, _ := fs.List("data/member/snap")
			if len(names) != 1 {
				t.Fatalf("files left: %v, want only the received one", names)
			}
		})
	}
}

// TestSnapshotResumeRefusesMixedData: a partial that changed after its
// offer (so the chunks the sender skipped are not its own) fails the
// whole-content check; nothing is installed and nothing kept.
func TestSnapshotResumeRefusesMixedData(t *testing.T) {
	fs := memfs.New()
	dk := openDisk(t, fs)
	ps := NewSnapshotPartials(dk)
	content := snapContent(10, 3*snapresume.ChunkBytes)
	r, _ := ps.Receive(snapMsg(10, 2))
	if _, _, err := stream(t, r, content, 2*snapresume.ChunkBytes); err != nil {
		t.Fatal(err)
	}
	r.Abort()
	r, _ = ps.Receive(snapMsg(10, 2))
	offer, err := r.Offer()
	if err != nil || len(offer.Chunks) != 2 {
		t.Fatalf("offer %d chunks, %v", len(offer.Chunks), err)
	}
	rot(t, fs, r.Resumes().Name, 24+7)
	rw := &ResumeWriter{Offer: offer, Send: func(b []byte) error { _, err := r.Write(b); return err }, Skip: r.Held}
	if _, err := rw.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := rw.Flush(); err != nil {
		t.Fatal(err)
	}
	_, err = r.Finish(SnapshotSum{Bytes: int64(len(content)), CRC: crc32.Checksum(content, castagnoli)})
	if err == nil {
		t.Fatal("a snapshot mixed with a changed partial was taken")
	}
	r.Abort()
	if names, _ := fs.List("data/member/snap"); len(names) != 0 || len(ps.Kept()) != 0 {
		t.Fatalf("files left %v, partials %v", names, ps.Kept())
	}
}

// TestSnapshotCutByNewerLeader: a transfer from a newer leader cuts the
// one in progress, which keeps its file for the newer to resume from; one
// from an older leader is refused while the newer streams; the leader's
// own second transfer cuts nothing.
func TestSnapshotCutByNewerLeader(t *testing.T) {
	dk := openDisk(t, memfs.New())
	ps := NewSnapshotPartials(dk)
	old, _ := ps.Receive(snapMsg(10, 2))
	content := snapContent(10, 2*snapresume.ChunkBytes)
	if _, err := old.Write(content[:snapresume.ChunkBytes+1]); err != nil {
		t.Fatal(err)
	}
	newer, err := ps.Receive(snapMsg(12, 3))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Write(content[:1]); !errors.Is(err, ErrSnapshotCut) {
		t.Fatalf("the cut transfer wrote on: %v", err)
	}
	old.Abort()
	for _, c := range newer.Cut() {
		<-c
	}
	if _, err := ps.Receive(snapMsg(13, 2)); err == nil {
		t.Fatal("an older leader's snapshot cut a newer one's")
	}
	again, err := ps.Receive(snapMsg(14, 3))
	// It waits for the first to keep its file instead.
	if err != nil || newer.WasCut() || len(again.Cut()) != 1 {
		t.Fatalf("the leader's second transfer cut its first, or does not wait for it (%v)", err)
	}
	offer, err := newer.Offer()
	if err != nil || offer.Bytes() != snapresume.ChunkBytes+1 {
		t.Fatalf("the newer transfer's offer holds %d bytes (%v), want the cut one's", offer.Bytes(), err)
	}
}

func TestSnapshotPartialsBounded(t *testing.T) {
	fs := memfs.New()
	dk := openDisk(t, fs)
	ps := NewSnapshotPartials(dk)
	for i := range snapresume.PartialsMax + 2 {
		index := uint64(10 + i)
		r, _ := ps.Receive(snapMsg(index, 2))
		// Each resumes from the last and holds a different head, so
		// each leaves a partial of its own.
		if _, _, err := stream(t, r, snapContent(index, 3*snapresume.ChunkBytes), (i+1)*1000); err != nil {
			t.Fatal(err)
		}
		r.Abort()
	}
	names, _ := fs.List("data/member/snap")
	if len(ps.Kept()) != snapresume.PartialsMax || len(names) != snapresume.PartialsMax {
		t.Fatalf("kept %v, files %v: want %d", ps.Kept(), names, snapresume.PartialsMax)
	}
}
