package core

import (
	"crypto/sha1"
	"encoding/binary"
	"slices"
	"strings"
)

// Member is one member of the cluster, as etcd describes it.
type Member struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	IsLearner  bool     `json:"isLearner,omitempty"`
}

// MemberID computes a member's id from its peer URLs and the cluster token
// the way etcd does for the members of a new cluster, so that the same
// flags give the same ids as etcd.
func MemberID(peerURLs []string, clusterToken string) uint64 {
	urls := slices.Clone(peerURLs)
	slices.Sort(urls)
	b := []byte(strings.Join(urls, ""))
	b = append(b, clusterToken...)
	sum := sha1.Sum(b)
	return binary.BigEndian.Uint64(sum[:8])
}

// ClusterID computes the cluster id from its members' ids as etcd does.
func ClusterID(memberIDs []uint64) uint64 {
	ids := slices.Clone(memberIDs)
	slices.Sort(ids)
	b := make([]byte, 8*len(ids))
	for i, id := range ids {
		binary.BigEndian.PutUint64(b[8*i:], id)
	}
	sum := sha1.Sum(b)
	return binary.BigEndian.Uint64(sum[:8])
}

// members is the applied membership, kept sorted by id so that every
// listing is deterministic.
type members struct {
	list    []Member
	removed []uint64
	// version counts changes, for drivers (not part of the state).
	version uint64
}

func (ms *members) add(m Member) {
	ms.version++
	i, found := slices.BinarySearchFunc(ms.list, m.ID, func(a Member, id uint64) int {
		switch {
		case a.ID < id:
			return -1
		case a.ID > id:
			return 1
		}
		return 0
	})
	if found {
		ms.list[i] = m
		return
	}
	ms.list = slices.Insert(ms.list, i, m)
}

func (ms *members) remove(id uint64) {
	ms.version++
	ms.list = slices.DeleteFunc(ms.list, func(m Member) bool { return m.ID == id })
	if !slices.Contains(ms.removed, id) {
		ms.removed = append(ms.removed, id)
		slices.Sort(ms.removed)
	}
}

func (ms *members) get(id uint64) (Member, bool) {
	for _, m := range ms.list {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}
