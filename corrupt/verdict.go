package corrupt

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
)

// The check rounds' verdicts: what the hashes a round gathered say,
// decided without I/O or goroutines. What a verdict would log comes back
// as notes for the round to write.

// PeerHash is one peer's answer to a hash request: Reply nil with Err
// when it had none.
type PeerHash struct {
	ID    uint64
	Reply *Reply
	Err   error
}

// Reply is a peer's hash at the revision asked: its current revision, its
// compaction revision and the hash.
type Reply struct {
	Revision        int64
	CompactRevision int64
	Hash            uint32
}

// note is a log line a verdict asks for.
type note struct {
	level slog.Level
	msg   string
	args  []any
}

func warnNote(msg string, args ...any) note  { return note{slog.LevelWarn, msg, args} }
func errorNote(msg string, args ...any) note { return note{slog.LevelError, msg, args} }

// logNotes writes a verdict's notes.
func (c *Checker) logNotes(notes []note) {
	for _, n := range notes {
		c.Log.Log(context.Background(), n.level, n.msg, n.args...)
	}
}

// bug reports whether the checker plants a verdict bug.
func (c *Checker) bug(name string) bool { return core.PlantedBugsAvailable() && c.PlantedBug == name }

// initialMismatches counts the peers whose hash at the local revision
// differs from the local one with the same compaction revision; peers
// that are behind, compacted past it or of another cluster are skipped.
func (c *Checker) initialMismatches(local mvcc.KVHash, peers []PeerHash) (mismatch int, notes []note) {
	for _, p := range peers {
		peer := fmt.Sprintf("%x", p.ID)
		switch {
		case p.Reply == nil:
			notes = append(notes, warnNote("cannot fetch hash from remote peer", "remote-peer-id", peer, "local-member-revision", int64(local.Rev), "err", p.Err))
		case local.Agrees(p.Reply.Hash): // either flavor: see mvcc.KVHash.Alt
		case p.Reply.CompactRevision == int64(local.CompactRev) || c.bug(core.BugCorruptCompactRevMismatch): // planted: another compaction counts
			notes = append(notes, warnNote("found different hash values from remote peer", "remote-peer-id", peer, "local-member-revision", int64(local.Rev),
				"local-member-hash", local.Hash, "remote-peer-hash", p.Reply.Hash, "compact-revision", p.Reply.CompactRevision))
			mismatch++
		default:
			notes = append(notes, warnNote("found different compact revision values from remote peer", "remote-peer-id", peer,
				"local-member-compact-revision", int64(local.CompactRev), "remote-peer-compact-revision", p.Reply.CompactRevision))
		}
	}
	return mismatch, notes
}

// periodicSuspect is the member the periodic check raises CORRUPT for, as
// etcd's does: the leader if its own hash changed while its revision did
// not, else the first peer that is ahead of the leader, compacted past
// it, or has another hash at the leader's first compaction revision.
func (c *Checker) periodicSuspect(h, h2 mvcc.KVHash, rev2 int64, peers []PeerHash) (uint64, bool, []note) {
	if h2.Hash != h.Hash && h2.Rev == h.Rev && h2.CompactRev == h.CompactRev {
		return c.ID, true, []note{warnNote("found hash mismatch", "revision", int64(h.Rev), "hash-1", h.Hash, "hash-2", h2.Hash)}
	}
	for _, p := range peers {
		if p.Reply == nil {
			continue
		}
		peer := fmt.Sprintf("%x", p.ID)
		var n note
		switch {
		case p.Reply.Revision > rev2:
			n = warnNote("revision from follower must be less than or equal to leader's", "leader-revision", rev2, "follower-revision", p.Reply.Revision, "follower-peer-id", peer)
		case p.Reply.CompactRevision > int64(h2.CompactRev):
			n = warnNote("compact revision from follower must be less than or equal to leader's", "leader-compact-revision", int64(h2.CompactRev), "follower-compact-revision", p.Reply.CompactRevision, "follower-peer-id", peer)
		case p.Reply.CompactRevision == int64(h.CompactRev) && !h.Agrees(p.Reply.Hash):
			n = warnNote("same compact revision then hashes must match", "leader-hash", h.Hash, "follower-hash", p.Reply.Hash, "follower-peer-id", peer)
		default:
			continue
		}
		return p.ID, true, []note{n}
	}
	return 0, false, nil
}

// compactHashVerdict compares the leader's hash kept at a compaction with
// its peers' at the same revision, as etcd's checkPeerHashes does. Peers
// that did not answer or hold another compaction revision are skipped.
// With one hash among the rest, done is true if no peer was skipped (all
// too), false to try an older revision. With several, the members outside
// the group holding a majority get the alarm, or member 0 (the cluster) if
// no group has one; done is true.
func (c *Checker) compactHashVerdict(leader mvcc.KVHash, peers []PeerHash) (alarms []uint64, done, all bool, notes []note) {
	byHash := map[uint32][]uint64{leader.Hash: {c.ID}}
	checked := 0
	for _, p := range peers {
		if p.Reply == nil || p.Reply.CompactRevision != int64(leader.CompactRev) {
			notes = append(notes, warnNote("skipped peer's hash", "peer-id", fmt.Sprintf("%x", p.ID), "revision", int64(leader.Rev), "err", p.Err))
			continue
		}
		checked++
		h := p.Reply.Hash
		if leader.Agrees(h) {
			h = leader.Hash // the peer had not compacted yet: see mvcc.KVHash.Alt
		}
		byHash[h] = append(byHash[h], p.ID)
	}
	if len(byHash) == 1 {
		all = checked == len(peers)
		if !all {
			notes = append(notes, warnNote("skipped revision in compaction hash check; was not able to check all peers", "revision", int64(leader.Rev), "number-of-peers-checked", checked))
		}
		return nil, all, all, notes
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
		notes = append(notes, errorNote("detected compaction hash mismatch", "revision", int64(leader.Rev), "compact-revision", int64(leader.CompactRev),
			"leader-hash", leader.Hash, "peer-hash", h, "members", fmt.Sprintf("%x", byHash[h]), "quorum-exist", found))
	}
	if !found {
		alarms = []uint64{0}
	}
	slices.Sort(alarms)
	return alarms, true, false, notes
}
