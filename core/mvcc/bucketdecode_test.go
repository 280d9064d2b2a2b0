package mvcc

import (
	"bytes"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"
)

// TestDecodeBucketKV: the decoder a restore uses reads what proto.Unmarshal
// reads from etcd's KeyValues, with fields repeated, unknown ones, and known
// numbers of another wire type among them; and refuses what it refuses.
func TestDecodeBucketKV(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var b []byte
		for range rapid.IntRange(1, 3).Draw(t, "parts") {
			kv := &mvccpb.KeyValue{
				Key:            rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, "key"),
				CreateRevision: rapid.Int64().Draw(t, "create"),
				ModRevision:    rapid.Int64().Draw(t, "mod"),
				Version:        rapid.Int64().Draw(t, "version"),
				Value:          rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, "value"),
				Lease:          rapid.Int64().Draw(t, "lease"),
			}
			enc, err := proto.Marshal(kv)
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, enc...)
			if rapid.Bool().Draw(t, "extra") {
				num := protowire.Number(rapid.IntRange(1, 9).Draw(t, "num"))
				b = protowire.AppendTag(b, num, protowire.Fixed32Type)
				b = protowire.AppendFixed32(b, 7)
			}
		}
		if rapid.Bool().Draw(t, "truncate") {
			b = b[:rapid.IntRange(0, len(b)).Draw(t, "at")]
		}
		var want mvccpb.KeyValue
		wantErr := proto.Unmarshal(b, &want)
		got, err := decodeBucketKV(b)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("decode error %v, proto.Unmarshal's %v", err, wantErr)
		}
		if err != nil {
			return
		}
		if !bytes.Equal(got.key, want.Key) || !bytes.Equal(got.value, want.Value) ||
			got.create != want.CreateRevision || got.mod != want.ModRevision ||
			got.version != want.Version || got.leaseID != want.Lease {
			t.Fatalf("decoded %+v, proto.Unmarshal %v", got, &want)
		}
	})
}
