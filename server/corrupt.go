package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
)

// etcd's corruption checks. Members ask each other for HashKV at a
// revision over the peer transport (etcd's /members/hashkv):
//   - the initial check (InitialCorruptCheck gate): a restarting member
//     compares its hash with its peers' before it serves clients, and
//     refuses to start when one differs at the same compaction;
//   - the periodic check (--corrupt-check-time): the leader compares its
//     hash with its followers' and raises CORRUPT for the first member
//     found wrong;
//   - the compaction hash check (CompactHashCheck gate,
//     --compact-hash-check-time): the leader compares the hashes members
//     kept at their last compactions and raises CORRUPT for the members
//     outside the majority (for member 0, the whole cluster, if there is
//     no majority).
// Once applied, a CORRUPT alarm makes every member refuse writes (core).

// ErrDataInconsistency is why a member refuses to start after the initial
// check: its hash differs from a peer's.
var ErrDataInconsistency = errors.New("found data inconsistency with peers")

// reqTimeout is etcd's request timeout: 5s plus two election timeouts.
func (s *Server) reqTimeout() time.Duration { return 5*time.Second + 2*s.cfg.ElectionTimeout }

// localHash is this member's HashKV at rev (0: its current revision), and
// its current revision.
func (s *Server) localHash(ctx context.Context, rev int64) (mvcc.KVHash, int64, error) {
	var v *mvcc.View
	var kept []mvcc.KVHash
	if err := s.onLoop(ctx, func(n *core.Node) { v, kept = n.HashView(), n.CompactionHashes() }); err != nil {
		return mvcc.KVHash{}, 0, err
	}
	h, err := core.KVHashAt(v, kept, rev)
	return h, int64(v.Rev()), err
}

// peerHash is one peer's answer to a hash request: reply nil with err when
// it had none.
type peerHash struct {
	id    uint64
	reply *hashKVReply
	err   error
}

// peerHashes asks every other member for its hash at rev, each peer URL in
// turn until one answers, as etcd does.
func (s *Server) peerHashes(rev int64) []peerHash {
	var out []peerHash
	ms := s.peers.memberList()
	slices.SortFunc(ms, func(a, b core.Member) int { return cmp.Compare(a.ID, b.ID) })
	for _, m := range ms {
		if m.ID == s.node.ID() || len(m.PeerURLs) == 0 {
			continue
		}
		p := peerHash{id: m.ID}
		for _, u := range m.PeerURLs {
			var r hashKVReply
			req := hashKVRequest{ClusterID: s.peers.clusterID, Revision: rev}
			if r, p.err = s.peers.dialer.askHashKV(u, req, s.reqTimeout()); p.err == nil {
				p.reply = &r
				break
			}
			s.log.Warn("failed hash kv request", "remote-peer-endpoint", u, "requested-revision", rev, "err", p.err)
		}
		out = append(out, p)
	}
	return out
}

// replayWaitMax bounds the initial check's wait for the member to replay
// its log.
const replayWaitMax = 5 * time.Minute

// initialCorruptCheck is etcd's InitialCheck, for a member that restarts
// with the InitialCorruptCheck gate: once it has applied what its log had
// committed, it compares its hash with each peer's at the same revision.
func (s *Server) initialCorruptCheck() error {
	id := fmt.Sprintf("%x", s.node.ID())
	s.log.Info("starting initial corruption check", "local-member-id", id, "timeout", s.reqTimeout().String())
	// Replaying the log is local work, which a long log makes longer than
	// a request may take.
	rctx, rcancel := context.WithTimeout(context.Background(), replayWaitMax)
	defer rcancel()
	if _, _, err := s.SerializableView(rctx); err != nil {
		return fmt.Errorf("%s failed to fetch hash (%w)", id, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.reqTimeout())
	defer cancel()
	h, _, err := s.localHash(ctx, 0)
	if err != nil {
		return fmt.Errorf("%s failed to fetch hash (%w)", id, err)
	}
	if initialMismatches(s.log, h, s.peerHashes(int64(h.Rev))) > 0 {
		return fmt.Errorf("%s %w", id, ErrDataInconsistency)
	}
	s.log.Info("initial corruption checking passed; no corruption", "local-member-id", id)
	return nil
}

// initialMismatches counts the peers whose hash at the local revision
// differs from the local one with the same compaction revision; peers
// that are behind, compacted past it or of another cluster are skipped.
func initialMismatches(log *slog.Logger, local mvcc.KVHash, peers []peerHash) int {
	mismatch := 0
	for _, p := range peers {
		peer := fmt.Sprintf("%x", p.id)
		switch {
		case p.reply == nil:
			log.Warn("cannot fetch hash from remote peer", "remote-peer-id", peer, "local-member-revision", int64(local.Rev), "err", p.err)
		case p.reply.Hash == local.Hash:
		case p.reply.CompactRevision == int64(local.CompactRev):
			log.Warn("found different hash values from remote peer", "remote-peer-id", peer, "local-member-revision", int64(local.Rev),
				"local-member-hash", local.Hash, "remote-peer-hash", p.reply.Hash, "compact-revision", p.reply.CompactRevision)
			mismatch++
		default:
			log.Warn("found different compact revision values from remote peer", "remote-peer-id", peer,
				"local-member-compact-revision", int64(local.CompactRev), "remote-peer-compact-revision", p.reply.CompactRevision)
		}
	}
	return mismatch
}

// raiseCorrupt proposes the CORRUPT alarm for a member.
func (s *Server) raiseCorrupt(member uint64) {
	s.log.Error("raising the CORRUPT alarm", "member", fmt.Sprintf("%x", member))
	ctx, cancel := context.WithTimeout(context.Background(), s.reqTimeout())
	defer cancel()
	if err := s.onLoop(ctx, func(n *core.Node) { n.RaiseCorrupt(member) }); err != nil {
		s.log.Warn("could not raise the CORRUPT alarm", "member", fmt.Sprintf("%x", member), "err", err)
	}
}

// monitorKVHash runs the periodic check every --corrupt-check-time, on
// the leader.
func (s *Server) monitorKVHash() {
	if s.cfg.CorruptCheckTime == 0 {
		return
	}
	s.log.Info("enabled corruption checking", "interval", s.cfg.CorruptCheckTime.String())
	t := time.NewTicker(s.cfg.CorruptCheckTime)
	defer t.Stop()
	for {
		select {
		case <-s.stopping:
			return
		case <-t.C:
		}
		if !s.status.isLeader() {
			continue
		}
		if err := s.periodicCheck(); err != nil {
			s.log.Warn("failed to check hash KV", "err", err)
		}
	}
}

// periodicCheck is etcd's PeriodicCheck: the leader's hash, the peers' at
// its revision, then the leader's again after a linearizable read, so
// that every peer has had the time to apply what the leader had.
func (s *Server) periodicCheck() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.reqTimeout())
	defer cancel()
	h, _, err := s.localHash(ctx, 0)
	if err != nil {
		return err
	}
	peers := s.peerHashes(int64(h.Rev))
	rctx, rcancel := context.WithTimeout(context.Background(), s.reqTimeout())
	defer rcancel()
	resp, err := s.Do(rctx, core.Request{ReadIndex: true})
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return err
	}
	h2, rev2, err := s.localHash(rctx, 0)
	if err != nil {
		return err
	}
	if id, ok := periodicSuspect(s.log, s.node.ID(), h, h2, rev2, peers); ok {
		s.raiseCorrupt(id)
	}
	s.log.Info("finished peer corruption check")
	return nil
}

// periodicSuspect is the member the periodic check raises CORRUPT for, as
// etcd's does: the leader if its own hash changed while its revision did
// not, else the first peer that is ahead of the leader, compacted past
// it, or has another hash at the leader's first compaction revision.
func periodicSuspect(log *slog.Logger, self uint64, h, h2 mvcc.KVHash, rev2 int64, peers []peerHash) (uint64, bool) {
	if h2.Hash != h.Hash && h2.Rev == h.Rev && h2.CompactRev == h.CompactRev {
		log.Warn("found hash mismatch", "revision", int64(h.Rev), "hash-1", h.Hash, "hash-2", h2.Hash)
		return self, true
	}
	for _, p := range peers {
		if p.reply == nil {
			continue
		}
		peer := fmt.Sprintf("%x", p.id)
		switch {
		case p.reply.Revision > rev2:
			log.Warn("revision from follower must be less than or equal to leader's", "leader-revision", rev2, "follower-revision", p.reply.Revision, "follower-peer-id", peer)
		case p.reply.CompactRevision > int64(h2.CompactRev):
			log.Warn("compact revision from follower must be less than or equal to leader's", "leader-compact-revision", int64(h2.CompactRev), "follower-compact-revision", p.reply.CompactRevision, "follower-peer-id", peer)
		case p.reply.CompactRevision == int64(h.CompactRev) && p.reply.Hash != h.Hash:
			log.Warn("same compact revision then hashes must match", "leader-hash", h.Hash, "follower-hash", p.reply.Hash, "follower-peer-id", peer)
		default:
			continue
		}
		return p.id, true
	}
	return 0, false
}

// monitorCompactHash runs the compaction hash check every
// --compact-hash-check-time, on the leader, with the CompactHashCheck gate.
func (s *Server) monitorCompactHash() {
	if gates, _ := s.cfg.gates(); !gates["CompactHashCheck"] {
		return
	}
	var checked int64 // the newest revision checked on every member
	for {
		select {
		case <-s.stopping:
			return
		case <-time.After(s.cfg.CompactHashCheckTime):
		}
		if s.status.isLeader() {
			checked = s.compactHashCheck(checked)
		}
	}
}

// compactHashCheck is etcd's CompactHashCheck: for the hashes kept at
// compactions after the last revision checked, newest first, it asks the
// peers for theirs until one revision could be checked. It returns the
// newest revision checked on the whole cluster.
func (s *Server) compactHashCheck(checked int64) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), s.reqTimeout())
	defer cancel()
	var kept []mvcc.KVHash
	if err := s.onLoop(ctx, func(n *core.Node) { kept = n.CompactionHashes() }); err != nil {
		return checked
	}
	slices.Reverse(kept)
	for _, h := range kept {
		if int64(h.Rev) <= checked {
			break
		}
		peers := s.peerHashes(int64(h.Rev))
		if len(peers) == 0 {
			continue
		}
		alarms, done, all := compactHashVerdict(s.log, s.node.ID(), h, peers)
		for _, id := range alarms {
			s.raiseCorrupt(id)
		}
		if all {
			checked = max(checked, int64(h.Rev))
		}
		if done {
			break
		}
	}
	return checked
}

// compactHashVerdict compares the leader's hash kept at a compaction with
// its peers' at the same revision, as etcd's checkPeerHashes does. Peers
// that did not answer or hold another compaction revision are skipped.
// With one hash among the rest, done is true if no peer was skipped (all
// too), false to try an older revision. With several, the members outside
// the group holding a majority get the alarm, or member 0 (the cluster) if
// no group has one; done is true.
func compactHashVerdict(log *slog.Logger, self uint64, leader mvcc.KVHash, peers []peerHash) (alarms []uint64, done, all bool) {
	byHash := map[uint32][]uint64{leader.Hash: {self}}
	checked := 0
	for _, p := range peers {
		if p.reply == nil || p.reply.CompactRevision != int64(leader.CompactRev) {
			log.Warn("skipped peer's hash", "peer-id", fmt.Sprintf("%x", p.id), "revision", int64(leader.Rev), "err", p.err)
			continue
		}
		checked++
		byHash[p.reply.Hash] = append(byHash[p.reply.Hash], p.id)
	}
	if len(byHash) == 1 {
		all = checked == len(peers)
		if !all {
			log.Warn("skipped revision in compaction hash check; was not able to check all peers", "revision", int64(leader.Rev), "number-of-peers-checked", checked)
		}
		return nil, all, all
	}
	quorum := (len(peers)+1)/2 + 1
	hashes := slices.Sorted(maps.Keys(byHash))
	majority, found := uint32(0), false
	for _, h := range hashes {
		if len(byHash[h]) >= quorum {
			majority, found = h, true
		}
	}
	for _, h := range hashes {
		if found && h != majority {
			alarms = append(alarms, byHash[h]...)
		}
		log.Error("detected compaction hash mismatch", "revision", int64(leader.Rev), "compact-revision", int64(leader.CompactRev),
			"leader-hash", leader.Hash, "peer-hash", h, "members", fmt.Sprintf("%x", byHash[h]), "quorum-exist", found)
	}
	if !found {
		alarms = []uint64{0}
	}
	slices.Sort(alarms)
	return alarms, true, false
}
