package auth

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/authpb"
	"google.golang.org/protobuf/proto"
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
		b = appendMsg(b, s.users[name])
	}
	b = binary.AppendUvarint(b, uint64(len(s.roles)))
	for _, name := range s.RoleList() {
		b = appendMsg(b, s.roles[name])
	}
	return b
}

func appendMsg(b []byte, m proto.Message) []byte {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic("auth: marshal: " + err.Error())
	}
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

// Unmarshal decodes what Marshal encoded.
func Unmarshal(b []byte) (*Store, error) {
	d := decoder{b: b}
	s := New()
	s.enabled = d.uvarint() == 1
	s.revision = d.uvarint()
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		u := &authpb.User{}
		d.msg(u)
		s.users[string(u.Name)] = u
	}
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		r := &authpb.Role{}
		d.msg(r)
		s.roles[string(r.Name)] = r
	}
	if d.err == nil && d.p != len(b) {
		d.err = fmt.Errorf("%w: %d bytes left over", ErrBadEncoding, len(b)-d.p)
	}
	return s, d.err
}

type decoder struct {
	b   []byte
	p   int
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, w := binary.Uvarint(d.b[d.p:])
	if w <= 0 {
		d.err = fmt.Errorf("%w: bad varint at offset %d", ErrBadEncoding, d.p)
		return 0
	}
	d.p += w
	return v
}

func (d *decoder) msg(m proto.Message) {
	n := d.uvarint()
	if d.err != nil {
		return
	}
	if uint64(len(d.b)-d.p) < n {
		d.err = fmt.Errorf("%w: record runs past the end at offset %d", ErrBadEncoding, d.p)
		return
	}
	if err := proto.Unmarshal(d.b[d.p:d.p+int(n)], m); err != nil {
		d.err = fmt.Errorf("%w: %v", ErrBadEncoding, err)
		return
	}
	d.p += int(n)
}
