package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/disk"
	"github.com/detcd/detcd/driver"
	"github.com/detcd/detcd/server/wire"
)

// peerTransport is the member's driver.Transport over the peer URLs (see
// peerwire.go for the wire). It owns the peer listeners and their HTTP
// server (peerhttp.go; the receive side, peerrecv.go), one sender per other member,
// started and stopped as the applied membership changes (peersend.go),
// and the membership it last saw, which the metrics and the corruption
// checks read.
type peerTransport struct {
	log       *slog.Logger
	id        uint64 // this member's
	clusterID uint64
	dialer    peerDialer
	serverTLS *tls.Config // the peer listeners'; nil without TLS
	metrics   *peerMetrics
	version   *clusterVersion // for GET /version
	// hashes answers a peer's HashKV: this member's hash at a revision,
	// and its current revision.
	hashes hashFunc
	// loop and drv are the one driver, which the receive side hands what
	// it takes; set by attach before any traffic.
	loop PeerLoop
	drv  *driver.Driver
	// disk takes the snapshots the leader streams, as they arrive, and
	// partials keeps those that broke off, to resume.
	disk     *disk.Disk
	partials *driver.SnapshotPartials
	// awaitReleased waits for the snapshot transfers a new one cut to
	// keep their files (snapshotrecv.go).
	awaitReleased func(ctx context.Context, released []<-chan struct{})

	senders peerSenders // the loop's
	// membersVersion is the node's MembersVersion members follows; the
	// loop's.
	membersVersion uint64
	membersSynced  bool

	mu      sync.Mutex
	members []core.Member // as the loop last applied them
	removed []uint64      // the members removed, as the loop last applied them

	http      *http.Server
	stopHTTP  context.CancelFunc // ends the requests in flight
	listeners []net.Listener
}

// PeerLoop is what the transport asks of the loop it carries messages
// for: driver.Loop's, or, in the simulator, a member's events in virtual
// time (PeerReceiver).
type PeerLoop interface {
	Post(ctx context.Context, fn func()) error
	PostPeer(fn func()) bool
	NewSignal() driver.Signal
}

// peerSenders keeps a sender for every other member of the applied
// membership.
type peerSenders struct {
	byID map[uint64]*peer
}

func newPeerTransport(log *slog.Logger, id, clusterID uint64, dialer peerDialer, serverTLS *tls.Config, m *peerMetrics, v *clusterVersion) *peerTransport {
	return &peerTransport{log: log, id: id, clusterID: clusterID, dialer: dialer, serverTLS: serverTLS, metrics: m, version: v, awaitReleased: awaitReleased}
}

// attach gives the transport the driver it carries messages for.
func (t *peerTransport) attach(loop *driver.Loop, drv *driver.Driver, d *disk.Disk, hashes hashFunc) {
	t.loop, t.drv, t.disk, t.hashes = loop, drv, d, hashes
	t.partials = driver.NewSnapshotPartials(d)
	for _, p := range t.partials.Adopt(d.ReceivedLeftovers()) {
		t.log.Info("kept a partial snapshot from before the restart", "file", p.Name, "index", p.Index, "bytes", p.Bytes)
	}
}

// listen serves the peer endpoints on the peer URLs, over TLS on https
// ones. On an error the listeners opened so far stay for closeListeners.
func (t *peerTransport) listen(urls []string) error {
	base, stop := context.WithCancel(context.Background())
	t.http, t.stopHTTP = t.newPeerServer(base), stop
	for _, u := range urls {
		ln, err := listen(u)
		if err != nil {
			return err
		}
		t.listeners = append(t.listeners, ln)
		if secureURL(u) {
			ln = newHandshakeListener(ln, t.serverTLS, t.log, rejectedPeer)
		}
		go func() { _ = t.http.Serve(ln) }()
		t.log.Info("serving peer traffic", "address", ln.Addr().String())
	}
	return nil
}

// addrs are the addresses the transport takes peer traffic on.
func (t *peerTransport) addrs() []string {
	var out []string
	for _, ln := range t.listeners {
		out = append(out, ln.Addr().String())
	}
	return out
}

// stopServing ends the receive side; closeListeners closes what it did
// not serve yet.
func (t *peerTransport) stopServing() {
	if t.http != nil {
		t.http.Close()
		t.stopHTTP()
	}
}

func (t *peerTransport) closeListeners() {
	for _, ln := range t.listeners {
		ln.Close()
	}
}

// stopSenders ends every sender; once the loop, which owns them, has
// stopped.
func (t *peerTransport) stopSenders() {
	for _, p := range t.senders.byID { //detcd:maporder-ok: each sender stops on its own
		close(p.stop)
	}
}

// memberList is the membership the loop last applied.
func (t *peerTransport) memberList() []core.Member {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]core.Member(nil), t.members...)
}

// syncPeers starts and stops senders as the membership changes; on the
// loop.
func (t *peerTransport) syncPeers() {
	ms, changed := t.syncMembers()
	if !changed {
		return
	}
	if t.senders.byID == nil {
		t.senders.byID = map[uint64]*peer{}
	}
	want := map[uint64]core.Member{}
	for _, m := range ms {
		if m.ID != t.id {
			want[m.ID] = m
		}
	}
	for id, p := range t.senders.byID { //detcd:maporder-ok: each sender stops on its own
		if m, ok := want[id]; !ok || !sameURLs(m.PeerURLs, p.urls) {
			close(p.stop)
			delete(t.senders.byID, id)
		}
	}
	for id, m := range want { //detcd:maporder-ok: each sender starts on its own
		if _, ok := t.senders.byID[id]; ok || len(m.PeerURLs) == 0 {
			continue
		}
		p := &peer{t: t, id: id, urls: m.PeerURLs, q: make(chan *[]byte, peerQueueMax), stop: make(chan struct{})}
		t.senders.byID[id] = p
		t.log.Info("started HTTP pipelining with remote peer", "local-member-id", fmt.Sprintf("%x", t.id), "remote-peer-id", fmt.Sprintf("%x", id))
		go p.run()
		go p.probeRTT()
	}
}

// syncMembers takes the membership the loop applied, if it changed since
// the last call (changed); on the loop.
func (t *peerTransport) syncMembers() (ms []core.Member, changed bool) {
	n := t.drv.Node()
	v := n.MembersVersion()
	if v == t.membersVersion && t.membersSynced {
		return nil, false
	}
	t.membersVersion, t.membersSynced = v, true
	ms = n.Members()
	if len(ms) == 0 {
		// A member that joined (or restarted) has applied no membership
		// yet: it must still answer the leader, or it never catches up.
		ms = n.InitialMembers()
	}
	t.mu.Lock()
	t.members, t.removed = ms, n.RemovedMembers()
	t.mu.Unlock()
	return ms, true
}

// isRemoved says whether a member was removed from the cluster.
func (t *peerTransport) isRemoved(id uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Contains(t.removed, id)
}

// removedBy tells the loop a peer says this member was removed.
func (t *peerTransport) removedBy(peer uint64) {
	t.loop.PostPeer(func() { t.drv.StepPeer(&core.PeerMessage{From: peer, To: t.id, Removed: true}) })
}

func sameURLs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Send implements driver.Transport: it hands raft messages to their
// peers' senders.
func (t *peerTransport) Send(ms []*raftpb.Message) {
	t.syncPeers()
	for _, m := range ms {
		p := t.senders.byID[m.GetTo()]
		if p == nil {
			continue
		}
		b, err := wire.EncodeRaft(m)
		if err != nil {
			continue
		}
		if !p.send(&b) {
			t.metrics.sendFailed.WithLabelValues(hexID(m.GetTo())).Inc()
			t.drv.ReportUnreachable(m.GetTo())
		}
	}
}

// SendPeer implements driver.Transport.
func (t *peerTransport) SendPeer(ms []*core.PeerMessage) {
	t.syncPeers()
	for _, m := range ms {
		if p := t.senders.byID[m.To]; p != nil {
			if b, err := wire.EncodePeer(m); err == nil {
				p.send(&b)
			}
		}
	}
}

// SendSnapshot implements driver.Transport: the snapshot streams off the
// loop.
func (t *peerTransport) SendSnapshot(snap core.OutgoingSnapshot) {
	t.syncPeers()
	if p := t.senders.byID[snap.To]; p != nil {
		go t.sendSnapshot(snap, p.urls)
	} else {
		t.drv.ReportSnapshot(snap.To, false)
	}
}
