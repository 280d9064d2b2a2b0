package auth

import (
	"encoding/binary"
	"errors"

	"go.etcd.io/etcd/api/v3/authpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core/internal/uvar"
)

// ErrBadEncoding is a store encoding that does not decode.
var ErrBadEncoding = errors.New("auth: bad encoding")

// Marshal encodes the store for a checkpoint:
//
//	uvarint enabled | uvarint revision |
//	uvarint count, bytes user... | uvarint count, bytes role...
//
// where bytes is a uvarint length and a protobuf, users and roles in
// name order.
func (s *Store) Marshal() []byte {
	var b []byte
	enabled := uint64(0)
	if s.enabled {
		enabled = 1
	}
	b = binary.AppendUvarint(b, enabled)
	b = binary.AppendUvarint(b, s.revision)
	b = binary.AppendUvarint(b, uint64(len(s.users)))
	for _, name := range s.UserList() {
		b = uvar.AppendBytes(b, marshal(s.users[name]))
	}
	b = binary.AppendUvarint(b, uint64(len(s.roles)))
	for _, name := range s.RoleList() {
		b = uvar.AppendBytes(b, marshal(s.roles[name]))
	}
	return b
}

func marshal(m proto.Message) []byte {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic("auth: marshal: " + err.Error())
	}
	return data
}

// Unmarshal decodes what Marshal encoded.
func Unmarshal(b []byte) (*Store, error) {
	d := uvar.NewReader(b, ErrBadEncoding, "auth store")
	s := New()
	s.enabled = d.Uvarint() == 1
	s.revision = d.Uvarint()
	for n := d.Uvarint(); n > 0 && d.Err() == nil; n-- {
		u := &authpb.User{}
		readMsg(d, u)
		s.users[string(u.Name)] = u
	}
	for n := d.Uvarint(); n > 0 && d.Err() == nil; n-- {
		r := &authpb.Role{}
		readMsg(d, r)
		s.roles[string(r.Name)] = r
	}
	if d.Err() == nil && d.Offset() != len(b) {
		d.Fail("%d bytes left over", len(b)-d.Offset())
	}
	return s, d.Err()
}

func readMsg(d *uvar.Reader, m proto.Message) {
	data := d.Bytes()
	if d.Err() != nil {
		return
	}
	if err := proto.Unmarshal(data, m); err != nil {
		d.Fail("%v", err)
	}
}
