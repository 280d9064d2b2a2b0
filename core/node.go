package core

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core/auth"
	"github.com/detcd/detcd/core/lease"
	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/core/watch"
)

// Node is one member. See the package documentation for the contract.
type Node struct {
	cfg Config
	log *slog.Logger

	rn      *raft.RawNode
	storage *raft.MemoryStorage
	kv      *mvcc.Store
	st      applied

	// lead and term are what raft last reported.
	lead, term uint64
	// ticks is logical time: every deadline is in ticks.
	ticks int64

	props proposals
	reads reads
	io    pendingIO
	ckpt  checkpointer
	// readys counts Readys, to space the deep invariant checks.
	readys uint64
	auto   autoCompactor
	watch  *watch.Hub
	// lessor holds the leases; only the leader expires them.
	lessor *lease.Lessor
	// clearing counts, by lease, the renewals whose cleared checkpoint is
	// on its way through raft: no periodic checkpoint is taken of such a
	// lease meanwhile (see leaseTick).
	clearing map[lease.ID]int
	// tokens are the simple tokens this member handed out.
	tokens *auth.Tokens

	// Lease requests forwarded to the leader, and those forwarded here.
	forwards     map[uint64]forward
	forwardOrder []uint64
	// held are answers to forwarded membership changes waiting for apply.
	held []heldReply
	// nextSeq numbers forwards from this run's ProposalEpoch up.
	nextSeq     uint64
	peerWaits   map[RequestID]peerOrigin
	nextPeerReq RequestID
	// peerSeen are the last forwards taken from each peer, so a
	// duplicated one is not carried out twice.
	peerSeen map[uint64][]uint64
	// activity is when this member heard from each peer, for the strict
	// reconfiguration check.
	activity peerActivity

	out Ready
	// spareResponses is the Responses slice of the last Ready handed
	// out, which the next Ready reuses.
	spareResponses []Response
	// incoming is a snapshot's content waiting for raft to accept it;
	// loading one raft took, being decoded off the loop, while heldApply
	// holds raft's apply messages that came since, in order (raft hands
	// out at most MaxCommittedSizePerReady of entries before their apply
	// is acknowledged, which bounds them).
	incoming, loading *IncomingSnapshot
	heldApply         []*raftpb.Message
	// transfers are leadership transfers waiting to finish.
	transfers []transfer
	// hashes are the key space's hashes at the last compactions; physical
	// are physical compactions waiting to answer.
	hashes   []mvcc.KVHash
	physical []*physicalWait
	// hashJobs counts compaction hashes handed to the driver and not yet
	// back.
	hashJobs int
	// publishRetryAt is when to propose this member's attributes again;
	// published once they were applied after this start.
	publishRetryAt int64
	published      bool
	// leadElectedTick is when this member last learned of a new leader.
	leadElectedTick int64
	// campaignPending: a lone voter campaigns as soon as raft lets it.
	campaignPending bool
	// failed is set when the node cannot go on (its state would be wrong);
	// every later request gets it.
	failed error
}

// applied is the state apply builds besides the key space.
type applied struct {
	index, term uint64
	confState   *raftpb.ConfState
	members     members
	alarms      alarms
	// clusterVersion is the version the leader set for the cluster.
	clusterVersion string
	// downgradeTarget is the cluster version a downgrade job aims at
	// ("3.6.0"), "" while none is on.
	downgradeTarget string
	auth            *auth.Store
}

// New bootstraps a member of a new cluster with empty storage.
func New(cfg Config) (*Node, error) {
	n, err := newEmpty(cfg)
	if err != nil {
		return nil, err
	}
	peers := make([]raft.Peer, 0, len(n.cfg.Members))
	for _, m := range n.cfg.Members {
		if m.IsLearner {
			continue
		}
		// Every member writes the same entries, as etcd's do: a member's
		// client URLs are its own to publish once it runs.
		m.ClientURLs = nil
		ctx, _ := json.Marshal(confContext{Member: m})
		peers = append(peers, raft.Peer{ID: m.ID, Context: ctx})
	}
	if err := n.rn.Bootstrap(peers); err != nil {
		return nil, fmt.Errorf("core: bootstrap: %w", err)
	}
	for _, p := range peers {
		n.st.confState.Voters = append(n.st.confState.Voters, p.ID)
	}
	n.campaignIfAlone()
	return n, nil
}

// NewJoining starts a member that joins an existing cluster with empty
// storage: it has no configuration of its own and learns the cluster's
// from the leader's log or snapshot.
func NewJoining(cfg Config) (*Node, error) { return newEmpty(cfg) }

// newEmpty starts a member with empty storage and an empty key space.
func newEmpty(cfg Config) (*Node, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := newNode(cfg, mvcc.New(), raft.NewMemoryStorage())
	if err := n.startRaft(0); err != nil {
		return nil, err
	}
	return n, nil
}

func newNode(cfg Config, kv *mvcc.Store, storage *raft.MemoryStorage) *Node {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kv.Bug = cfg.PlantedBug
	n := &Node{cfg: cfg, log: log, kv: kv, storage: storage}
	n.watch = watch.New(kv, n.watchHeader)
	n.watch.Bug = cfg.PlantedBug
	n.lessor = lease.New(cfg.lessorConfig())
	n.forwards, n.peerWaits, n.peerSeen = map[uint64]forward{}, map[RequestID]peerOrigin{}, map[uint64][]uint64{}
	n.activity = newPeerActivity()
	// A leader may still answer what this member forwarded before a
	// restart: the new run's sequence numbers must not meet those.
	n.nextSeq = cfg.ProposalEpoch
	n.props.init(cfg)
	n.st.confState = &raftpb.ConfState{}
	n.st.auth = auth.New()
	n.tokens = auth.NewTokens(int64(cfg.AuthTokenTTLTicks))
	return n
}

func (n *Node) startRaft(appliedIndex uint64) error {
	rc := &raft.Config{
		ID:                        n.cfg.ID,
		ElectionTick:              n.cfg.ElectionTicks,
		HeartbeatTick:             n.cfg.HeartbeatTicks,
		Storage:                   n.storage,
		Applied:                   appliedIndex,
		AsyncStorageWrites:        true,
		MaxSizePerMsg:             1 << 20,
		MaxCommittedSizePerReady:  64 << 20,
		MaxUncommittedEntriesSize: 1 << 30,
		MaxInflightMsgs:           512,
		CheckQuorum:               true,
		PreVote:                   true,
		Logger:                    raftLogger{n.log},
	}
	var err error
	n.rn, err = raft.NewRawNode(rc)
	if err != nil {
		return fmt.Errorf("core: start raft: %w", err)
	}
	return nil
}

// ID is this member's id.
func (n *Node) ID() uint64 { return n.cfg.ID }

// Config is the node's configuration, defaults filled in: what
// PrepareSnapshot needs, taken on the loop to hand off it.
func (n *Node) Config() Config { return n.cfg }

// Tick advances logical time by one tick.
func (n *Node) Tick() {
	n.flushProposals()
	n.ticks++
	n.rn.Tick()
	if every := int64(n.cfg.WatchProgressNotifyTicks); every > 0 && n.ticks%every == 0 {
		n.watch.ProgressTick()
	}
	n.props.expire(n)
	n.reads.expire(n)
	n.expireForwards()
	n.auto.tick(n)
	n.leaseTick()
	n.checkTransfers()
	n.sendLinkHeartbeats()
	n.publishAttributes()
	if n.ticks%authTokenSweepTicks == 0 {
		n.tokens.Expire(n.ticks)
	}
}

// Step hands the node a raft message from a peer.
func (n *Node) Step(m *raftpb.Message) error {
	if raft.IsLocalMsg(m.GetType()) {
		return fmt.Errorf("core: refusing local message %s from a peer", m.GetType())
	}
	if slices.Contains(n.st.members.removed, m.GetFrom()) {
		// A removed member must not disturb the cluster; tell it, so it
		// stops.
		n.out.Peer = append(n.out.Peer, &PeerMessage{From: n.cfg.ID, To: m.GetFrom(), Removed: true})
		return nil
	}
	n.peerHeard(m.GetFrom())
	err := n.rn.Step(m)
	if err == raft.ErrStepPeerNotFound || err == raft.ErrStepLocalMsg {
		return nil // a stale or misdirected message: raft drops these too
	}
	return err
}

// Request hands the node a client request. The response comes in a later
// Ready (or this one).
func (n *Node) Request(r Request) {
	if n.failed != nil {
		n.respond(r.ID, nil, n.failed)
		return
	}
	if err := n.validate(&r); err != nil {
		n.respond(r.ID, nil, err)
		return
	}
	if err := n.authorize(&r); err != nil {
		n.respond(r.ID, nil, err)
		return
	}
	switch {
	case r.Auth != nil:
		n.proposeAuth(r)
	case r.AuthLookup != nil:
		n.lookupUser(r)
	case r.Range != nil:
		n.readRange(r)
	case r.Txn != nil && isTxnReadonly(r.Txn):
		n.readTxn(r)
	case r.Put != nil, r.DeleteRange != nil, r.Txn != nil, r.Compaction != nil, r.Alarm != nil,
		r.LeaseGrant != nil, r.LeaseRevoke != nil:
		n.propose(r)
	case r.LeaseKeepAlive != nil:
		n.keepAlive(r)
	case r.LeaseTimeToLive != nil:
		n.timeToLive(r)
	case r.LeaseLeases:
		n.leaseLeases(r)
	case r.Status:
		n.respond(r.ID, n.status(), nil)
	case r.Defragment:
		id := r.ID
		n.kv.Defragment(func() {
			// As etcd's defragmentation shrinks its database file, a
			// checkpoint of the defragmented state lets go of the log
			// that compactions made redundant, and a restart loads the
			// smaller state instead of replaying what they removed.
			n.ckpt.wanted = true
			n.respond(id, &pb.DefragmentResponse{Header: n.header(0)}, nil)
		})
	case r.MemberList != nil:
		n.memberList(r)
	case r.MemberAdd != nil:
		n.memberAdd(r)
	case r.MemberRemove != nil:
		n.memberRemove(r)
	case r.MemberUpdate != nil:
		n.memberUpdate(r)
	case r.MemberPromote != nil:
		n.memberPromote(r)
	case r.MoveLeader != nil:
		n.moveLeader(r, nil)
	case r.HandOff:
		n.handOff(r)
	case r.Downgrade != nil:
		n.downgrade(r)
	case r.Snapshot:
		n.out.Responses = append(n.out.Responses, Response{ID: r.ID, View: n.kv.Snapshot(), Header: n.header(0), Hashes: slices.Clone(n.hashes)})
	case r.Backup:
		n.out.Responses = append(n.out.Responses, Response{ID: r.ID, Backup: n.stateNow(), Header: n.header(0)})
	case r.ReadIndex:
		n.reads.add(n, r)
	case r.WhoAmI:
		n.out.Responses = append(n.out.Responses, Response{ID: r.ID, Caller: &Caller{TokenUser: r.user, TokenRevision: r.authRev},
			CallerUntilTick: n.ticks + int64(n.cfg.AuthTokenTTLTicks)/2})
	default:
		n.respond(r.ID, nil, ErrUnknownRequest)
	}
}

// StepBackground does one bounded step, CompactionStepRecordsMax records,
// of the background work Ready.More announced: physical compaction and
// defragmentation. The driver paces these steps in turns of their own,
// apart from the turns that serve requests, as etcd's compaction sleeps
// between its batches: a request then waits for at most one step, and
// the work leaves the loop idle between steps instead of adding a step
// to every request's turn.
func (n *Node) StepBackground() {
	if n.kv.Pending() {
		n.kv.Step(CompactionStepRecordsMax)
	}
}

// Ready collects everything the driver must do now. Its Responses are
// the driver's until the next call of Ready, which reuses their slice.
func (n *Node) Ready() Ready {
	n.props.retry(n)
	n.flushProposals()
	n.processRaft()
	n.reads.start(n)
	n.processRaft()
	n.reads.serve(n)
	n.releaseHeld()
	// Proposals made while applying (a retry after a leader change, say)
	// go out in this Ready, not at the next input. Raft applies nothing
	// before its appends are persisted, so this ends.
	for len(n.props.batch) > 0 {
		n.flushProposals()
		n.processRaft()
	}
	n.ckpt.maybeStart(n)
	if n.watch.Pending() {
		n.watch.Step(WatchCatchUpBudget)
	}
	n.out.Watch = n.watch.Take()
	n.out.More = n.kv.Pending() || n.watch.Pending()
	n.out.Messages = coalesceMessages(n.out.Messages)
	n.checkInvariants()
	rd := n.out
	// The responses' slice of the Ready before this one is free again
	// (its responses were carried out): reuse it rather than grow a new
	// one every turn.
	clear(n.spareResponses)
	n.out = Ready{Responses: n.spareResponses[:0]}
	n.spareResponses = rd.Responses
	return rd
}

// processRaft drains raft's Readys into the node's output.
func (n *Node) processRaft() {
	for n.rn.HasReady() {
		rd := n.rn.Ready()
		if rd.SoftState != nil {
			n.softState(rd.SoftState)
		}
		if hs := rd.HardState; hs != nil && hs.GetTerm() != 0 {
			n.term = hs.GetTerm()
		}
		for _, rs := range rd.ReadStates {
			n.reads.gotIndex(rs.RequestCtx, rs.Index)
		}
		for _, m := range rd.Messages {
			switch m.GetTo() {
			case raft.LocalAppendThread:
				n.io.append(n, m)
			case raft.LocalApplyThread:
				if n.loading != nil {
					n.heldApply = append(n.heldApply, m)
				} else {
					n.applyMsg(m)
				}
			default:
				if m.GetType() == raftpb.MsgSnap {
					n.sendSnapshot(m)
				} else {
					n.out.Messages = append(n.out.Messages, m)
				}
			}
		}
	}
}

// applyMsg applies the committed entries of raft's apply message m and
// tells raft.
func (n *Node) applyMsg(m *raftpb.Message) {
	n.apply(m.GetEntries())
	n.stepLocal(m.GetResponses())
	n.maybeCampaign()
}

func (n *Node) softState(ss *raft.SoftState) {
	changed := ss.Lead != n.lead
	wasLeader := n.isLeader()
	n.lead = ss.Lead
	n.leadershipChanged(wasLeader)
	if changed && ss.Lead != raft.None {
		n.leadElectedTick = n.ticks
	}
	if changed {
		n.checkTransfers()
		n.log.Info("leader changed", "member", fmt.Sprintf("%x", n.cfg.ID), "leader", fmt.Sprintf("%x", ss.Lead), "state", ss.RaftState.String())
		n.props.leaderChanged(n)
		n.reads.leaderChanged(n)
	}
}

// stepLocal delivers responses from the local append and apply "threads"
// back into raft.
func (n *Node) stepLocal(ms []*raftpb.Message) {
	for _, m := range ms {
		if m.GetTo() != n.cfg.ID {
			n.out.Messages = append(n.out.Messages, m)
			continue
		}
		if err := n.rn.Step(m); err != nil {
			n.fail(fmt.Errorf("core: step local %s: %w", m.GetType(), err))
		}
	}
}

// Persisted tells the node that the write with this id (and every earlier
// one) is durable.
func (n *Node) Persisted(id uint64) { n.io.persisted(n, id) }

// fail stops the node: from now on every request gets err.
func (n *Node) fail(err error) {
	if n.failed == nil {
		n.failed = err
		n.log.Error("member failed", "err", err)
	}
}

// Err reports why the node stopped, if it did.
func (n *Node) Err() error { return n.failed }

func (n *Node) respond(id RequestID, msg proto.Message, err error) {
	r := Response{ID: id, Msg: msg, Err: err}
	if id&peerRequestBit != 0 && n.replyPeer(r) {
		return
	}
	n.out.Responses = append(n.out.Responses, r)
}

// raftLogger sends raft's logging to slog instead of its default, which
// writes timestamps to stderr.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)                 { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(format string, v ...any) { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r raftLogger) Error(v ...any)                 { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(format string, v ...any) { r.l.Error(fmt.Sprintf(format, v...)) }
func (r raftLogger) Info(v ...any)                  { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(format string, v ...any)  { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r raftLogger) Warning(v ...any)               { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(format string, v ...any) {
	r.l.Warn(fmt.Sprintf(format, v...))
}
func (r raftLogger) Fatal(v ...any) { panic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(format string, v ...any) {
	panic(fmt.Sprintf(format, v...))
}
func (r raftLogger) Panic(v ...any) { panic(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(format string, v ...any) {
	panic(fmt.Sprintf(format, v...))
}
