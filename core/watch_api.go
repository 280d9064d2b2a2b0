package core

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core/watch"
)

// WatchOpen starts a watch stream with a driver-chosen id.
func (n *Node) WatchOpen(id watch.StreamID) { n.watch.Open(id) }

// WatchRequest hands the node a request from a watch stream: create,
// cancel or progress. Its answers come in Ready.Watch.
func (n *Node) WatchRequest(id watch.StreamID, r *pb.WatchRequest) { n.watch.Request(id, r) }

// WatchCredit gives a stream back the credit of responses it has sent.
func (n *Node) WatchCredit(id watch.StreamID, bytes int) { n.watch.Credit(id, bytes) }

// WatchClose ends a watch stream.
func (n *Node) WatchClose(id watch.StreamID) { n.watch.Close(id) }

// watchHeader is a watch response's header. Unlike other headers it keeps
// a zero revision: etcd sends one when it cancels a compacted watcher.
func (n *Node) watchHeader(rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: n.cfg.ClusterID, MemberId: n.cfg.ID, Revision: rev, RaftTerm: n.term}
}
