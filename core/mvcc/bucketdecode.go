package mvcc

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
)

// bucketKV is an mvccpb.KeyValue as etcd's key bucket stores it, decoded
// without copying: key and value alias the encoded bytes.
type bucketKV struct {
	key, value                    []byte
	create, mod, version, leaseID int64
}

// The field numbers of mvccpb.KeyValue.
const (
	kvFieldKey     = 1
	kvFieldCreate  = 2
	kvFieldMod     = 3
	kvFieldVersion = 4
	kvFieldValue   = 5
	kvFieldLease   = 6
)

var errKeyValue = errors.New("not an encoded KeyValue")

// decodeBucketKV decodes b as proto.Unmarshal would into an
// mvccpb.KeyValue (a repeated field's last value wins; unknown fields,
// and known ones of another wire type, are skipped), without allocating:
// a restore decodes one per revision of the store.
func decodeBucketKV(b []byte) (bucketKV, error) {
	var kv bucketKV
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return kv, errKeyValue
		}
		b = b[n:]
		switch {
		case typ == protowire.BytesType && (num == kvFieldKey || num == kvFieldValue):
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return kv, errKeyValue
			}
			if num == kvFieldKey {
				kv.key = v
			} else {
				kv.value = v
			}
			n = m
		case typ == protowire.VarintType && num >= kvFieldCreate && num <= kvFieldLease && num != kvFieldValue:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return kv, errKeyValue
			}
			*kv.varintField(num) = int64(v)
			n = m
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return kv, errKeyValue
			}
		}
		b = b[n:]
	}
	return kv, nil
}

func (kv *bucketKV) varintField(num protowire.Number) *int64 {
	switch num {
	case kvFieldCreate:
		return &kv.create
	case kvFieldMod:
		return &kv.mod
	case kvFieldVersion:
		return &kv.version
	}
	return &kv.leaseID
}
