package mvcc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// TestBucketWriterUncompacted: a bucket that still holds what a compaction
// at its compaction point removes (older versions, tombstones; etcd
// compacts in the background, so its file may) streams through the
// BucketWriter's two passes into the content BucketImporter makes, at
// every compaction point.
func TestBucketWriterUncompacted(t *testing.T) {
	type op struct {
		key    string
		del    bool
		create int64
		ver    int64
	}
	history := []op{
		{key: "a", create: 1, ver: 1}, {key: "b", create: 2, ver: 1}, {key: "a", create: 1, ver: 2},
		{key: "b", del: true}, {key: "c", create: 5, ver: 1}, {key: "a", del: true}, {key: "b", create: 7, ver: 1},
	}
	var entries []bucketEntryBytes
	for i, o := range history {
		rev := int64(i + 1)
		k := binary.BigEndian.AppendUint64(nil, uint64(rev))
		k = binary.BigEndian.AppendUint64(append(k, '_'), 0)
		kv := &mvccpb.KeyValue{Key: []byte(o.key)}
		if o.del {
			k = append(k, 't')
		} else {
			kv.CreateRevision, kv.ModRevision, kv.Version, kv.Value = o.create, rev, o.ver, []byte(fmt.Sprint("v", rev))
		}
		v, err := proto.Marshal(kv)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, bucketEntryBytes{k, v})
	}
	last := Revision(len(history))
	for compactRev := Revision(-1); compactRev <= last+1; compactRev++ {
		var im BucketImporter
		for _, e := range entries {
			if err := im.Add(e.k, e.v); err != nil {
				t.Fatal(err)
			}
		}
		want := im.AppendCheckpoint(nil, compactRev)
		got, err := streamEntries(entries, compactRev, last)
		if err != nil {
			t.Fatalf("compacted at %d: %v", compactRev, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("compacted at %d: streamed\n%x\nwant\n%x", compactRev, got, want)
		}
		loaded, _, err := Load(want)
		if err != nil {
			t.Fatalf("compacted at %d: load: %v", compactRev, err)
		}
		checkBucketStat(t, entries, loaded, last)
	}
}

// checkBucketStat: BucketStat, reading the entries, reports what the
// store loaded from them answers.
func checkBucketStat(t interface{ Fatalf(string, ...any) }, entries []bucketEntryBytes, loaded *Store, lastMod Revision) {
	got, err := statEntries(entries, loaded.CompactRev(), lastMod)
	if err != nil {
		t.Fatalf("compacted at %d: stat: %v", loaded.CompactRev(), err)
	}
	if want := storeStatus(t, loaded); got != want {
		t.Fatalf("compacted at %d: stat of the bucket %+v, of the loaded store %+v", loaded.CompactRev(), got, want)
	}
}

// storeStatus is what a store reports that BucketStat reports.
func storeStatus(t interface{ Fatalf(string, ...any) }, s *Store) BucketStatus {
	h, err := s.Snapshot().HashKV(0)
	if err != nil {
		t.Fatalf("hash: %v", err)
	}
	res, err := s.Range([]byte{}, []byte{}, RangeOptions{CountOnly: true})
	if err != nil {
		t.Fatalf("count: %v", err)
	}
	return BucketStatus{Rev: s.Rev(), CompactRev: s.CompactRev(), Keys: res.Count, Hash: h.Hash}
}

// statEntries reads the key bucket entries, in order, through a
// BucketStat's passes, as `snapshot status` reads etcd's file.
func statEntries(entries []bucketEntryBytes, compactRev, lastMod Revision) (BucketStatus, error) {
	values := map[string][]byte{}
	bs := NewBucketStat(compactRev, lastMod)
	for _, e := range entries {
		values[string(e.k)] = e.v
		if err := bs.Note(e.k, e.v); err != nil {
			return BucketStatus{}, err
		}
	}
	if err := bs.HashCold(func(k []byte) []byte { return values[string(k)] }); err != nil {
		return BucketStatus{}, err
	}
	for _, e := range entries {
		if bytes.Compare(e.k, bs.HotStart()) >= 0 {
			if err := bs.HashHot(e.k, e.v); err != nil {
				return BucketStatus{}, err
			}
		}
	}
	return bs.Status()
}

// bucketEntryBytes is a key bucket entry.
type bucketEntryBytes struct{ k, v []byte }

// streamEntries writes the key bucket entries, in order, through a
// BucketWriter's two passes, as a restore reads etcd's file.
func streamEntries(entries []bucketEntryBytes, compactRev, lastMod Revision) ([]byte, error) {
	values := map[string][]byte{}
	for _, e := range entries {
		values[string(e.k)] = e.v
	}
	var out bytes.Buffer
	bw := NewBucketWriter(&out, compactRev, lastMod)
	for _, e := range entries {
		more, err := bw.NoteCold(e.k, e.v)
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
	}
	if err := bw.WriteCold(func(k []byte) []byte { return values[string(k)] }); err != nil {
		return nil, err
	}
	for _, e := range entries {
		if bytes.Compare(e.k, bw.HotStart()) >= 0 {
			if err := bw.Add(e.k, e.v); err != nil {
				return nil, err
			}
		}
	}
	err := bw.Close()
	return out.Bytes(), err
}
