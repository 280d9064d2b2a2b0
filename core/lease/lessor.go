package lease

import (
	"container/heap"
	"errors"
	"slices"

	"github.com/detcd/detcd/core/internal/planted"
)

// ID names a lease; 0 means no lease.
type ID int64

// MaxTTL is etcd's largest lease TTL, in seconds.
const MaxTTL = 9_000_000_000

// Errors, as etcd's lessor words them.
var (
	ErrNotFound    = errors.New("lease not found")
	ErrExists      = errors.New("lease already exists")
	ErrTTLTooLarge = errors.New("too large lease TTL")
	ErrNotPrimary  = errors.New("not a primary lessor")
)

// forever is the expiry of a lease on a member that is not the primary.
const forever = int64(1<<63 - 1)

// Lease is one lease.
type Lease struct {
	ID ID
	// TTL is the granted time to live, in seconds (raised to the minimum).
	TTL int64
	// RemainingTTL is the last checkpointed remaining time to live, in
	// seconds; 0 means none and the full TTL applies.
	RemainingTTL int64
	expiry       int64 // tick; forever when not primary
	keys         map[string]struct{}
	// revokeAt is when an expired lease's revoke may be proposed again.
	revokeAt int64
	// checkpointAt is the tick of the lease's one pending checkpoint on
	// the primary (0: none); the checkpoint heap's other entries for it
	// are stale.
	checkpointAt int64
}

// Keys returns the attached keys, sorted.
func (l *Lease) Keys() []string {
	ks := make([]string, 0, len(l.keys))
	for k := range l.keys { //core:maporder-ok: sorted below
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (l *Lease) remainingSeconds() int64 {
	if l.RemainingTTL > 0 {
		return l.RemainingTTL
	}
	return l.TTL
}

// Config is the lessor's timing, in ticks.
type Config struct {
	// TicksPerSecond converts TTLs to ticks.
	TicksPerSecond int64
	// MinTTL is the smallest TTL a lease gets, in seconds: etcd's
	// 1.5 election timeouts, rounded up.
	MinTTL int64
	// CheckpointTicks is how often remaining TTLs are checkpointed; 0
	// turns checkpointing off.
	CheckpointTicks int64
	// RevokesPerTick rate-limits expiry.
	RevokesPerTick int
	// RetryTicks is how long an expired lease waits before its revoke is
	// proposed again (etcd: 3 s).
	RetryTicks int64
	// Bug names a planted bug (core/internal/planted); empty but in
	// detcdbugs builds.
	Bug string
}

// Lessor holds the leases.
type Lessor struct {
	cfg     Config
	leases  map[ID]*Lease
	primary bool
	// expiries orders leases by expiry on the primary; entries may be
	// stale and are checked against the lease.
	expiries timeHeap
	// checkpoints orders due checkpoints on the primary.
	checkpoints timeHeap
}

// New returns an empty lessor.
func New(cfg Config) *Lessor {
	if cfg.TicksPerSecond <= 0 {
		cfg.TicksPerSecond = 10
	}
	return &Lessor{cfg: cfg, leases: map[ID]*Lease{}}
}

// Len is the number of leases.
func (le *Lessor) Len() int { return len(le.leases) }

// Lookup returns a lease, or nil.
func (le *Lessor) Lookup(id ID) *Lease { return le.leases[id] }

// IsPrimary reports whether this lessor expires leases.
func (le *Lessor) IsPrimary() bool { return le.primary }

// Leases returns every lease, by id.
func (le *Lessor) Leases() []*Lease {
	ls := make([]*Lease, 0, len(le.leases))
	for _, l := range le.leases { //core:maporder-ok: sorted below
		ls = append(ls, l)
	}
	slices.SortFunc(ls, func(a, b *Lease) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return ls
}

// Grant creates a lease at tick now.
func (le *Lessor) Grant(id ID, ttl, now int64) (*Lease, error) {
	switch {
	case id == 0:
		return nil, ErrNotFound
	case ttl > MaxTTL:
		return nil, ErrTTLTooLarge
	case le.leases[id] != nil:
		return nil, ErrExists
	}
	l := &Lease{ID: id, TTL: max(ttl, le.cfg.MinTTL), keys: map[string]struct{}{}, expiry: forever}
	le.leases[id] = l
	if le.primary {
		le.refresh(l, now, 0)
		le.scheduleCheckpoint(l, now)
	}
	return l, nil
}

// Restore adds a lease from a checkpoint.
func (le *Lessor) Restore(id ID, ttl, remaining int64) {
	le.leases[id] = &Lease{ID: id, TTL: max(ttl, le.cfg.MinTTL), RemainingTTL: remaining, keys: map[string]struct{}{}, expiry: forever}
}

// Revoke removes a lease and returns its keys, sorted: the caller deletes
// them in one revision.
func (le *Lessor) Revoke(id ID) ([]string, error) {
	l := le.leases[id]
	if l == nil {
		return nil, ErrNotFound
	}
	delete(le.leases, id)
	if planted.Enabled && le.cfg.Bug == planted.LeaseRevokeKeepsKeys {
		return nil, nil // planted: the lease goes, its keys stay
	}
	return l.Keys(), nil
}

// Checkpoint records a lease's remaining TTL.
func (le *Lessor) Checkpoint(id ID, remaining, now int64) {
	if l := le.leases[id]; l != nil {
		l.RemainingTTL = remaining
		if le.primary {
			le.scheduleCheckpoint(l, now)
		}
	}
}

// Renew restarts a lease's TTL; only the primary renews. An expired lease
// is about to be revoked and cannot be renewed.
func (le *Lessor) Renew(id ID, now int64) (int64, error) {
	if !le.primary {
		return -1, ErrNotPrimary
	}
	l := le.leases[id]
	if l == nil || l.expiry <= now {
		return -1, ErrNotFound
	}
	if !(planted.Enabled && le.cfg.Bug == planted.LeaseRenewNoRefresh) { // planted: the renewal leaves the expiry alone
		le.refresh(l, now, 0)
	}
	return l.TTL, nil
}

// Remaining is a lease's remaining TTL in whole seconds, rounded up, on the
// primary; on others the full remaining TTL.
func (le *Lessor) Remaining(l *Lease, now int64) int64 {
	if !le.primary || l.expiry == forever {
		return l.remainingSeconds()
	}
	left := l.expiry - now
	if left <= 0 {
		return 0
	}
	return (left + le.cfg.TicksPerSecond - 1) / le.cfg.TicksPerSecond
}

// refresh restarts a lease's clock. now is the last tick, which may lie up
// to a tick in the past: one more tick makes sure a lease never ends
// before its TTL has passed since the renewal, in the leader's time.
func (le *Lessor) refresh(l *Lease, now, extendTicks int64) {
	l.expiry = now + 1 + extendTicks + l.remainingSeconds()*le.cfg.TicksPerSecond
	if planted.Enabled && le.cfg.Bug == planted.LeaseExpiresEarly {
		l.expiry -= le.cfg.TicksPerSecond // planted: a second short, as a seconds rounding bug would be
	}
	l.revokeAt = 0
	heap.Push(&le.expiries, timed{at: l.expiry, id: l.ID})
}

// Promote makes this lessor the primary at tick now: every lease expires
// its remaining TTL plus extend ticks from now, as etcd extends leases so
// that clients have time to find the new leader. When more leases would
// expire within a second than the revoke rate allows, later ones are
// spread out, as etcd does.
func (le *Lessor) Promote(now, extendTicks int64) {
	le.primary = true
	le.expiries, le.checkpoints = nil, nil
	ls := le.Leases()
	for _, l := range ls {
		if rem := l.RemainingTTL; planted.Enabled && le.cfg.Bug == planted.LeasePromoteFullTTL {
			l.RemainingTTL = 0 // planted: the new leader ignores the checkpointed TTL
			le.refresh(l, now, extendTicks)
			l.RemainingTTL = rem
		} else {
			le.refresh(l, now, extendTicks)
		}
		le.scheduleCheckpoint(l, now)
	}
	perSecond := int64(le.cfg.RevokesPerTick) * le.cfg.TicksPerSecond * 3 / 4
	if perSecond <= 0 || int64(len(ls)) < perSecond {
		return
	}
	slices.SortStableFunc(ls, func(a, b *Lease) int {
		switch {
		case a.expiry < b.expiry:
			return -1
		case a.expiry > b.expiry:
			return 1
		}
		return 0
	})
	window, expires := ls[0].expiry, int64(0)
	for _, l := range ls {
		if l.expiry > window+le.cfg.TicksPerSecond {
			window, expires = l.expiry, 1
			continue
		}
		expires++
		if expires <= perSecond {
			continue
		}
		delay := le.cfg.TicksPerSecond*expires/perSecond - (l.expiry - window)
		if delay > 0 {
			le.refresh(l, now, delay+extendTicks)
		}
	}
}

// Demote stops expiring leases: another member leads.
func (le *Lessor) Demote() {
	le.primary = false
	le.expiries, le.checkpoints = nil, nil
	for _, l := range le.leases { //core:maporder-ok: sets every lease alike
		l.expiry = forever
	}
}

// Expired returns up to limit leases past their expiry whose revoke may
// be proposed now, in expiry order; it will not return one again before
// RetryTicks have passed (its revoke may still be on its way through raft).
func (le *Lessor) Expired(now int64, limit int) []ID {
	if !le.primary {
		return nil
	}
	var out []ID
	for len(out) < limit && len(le.expiries) > 0 && le.expiries[0].at <= now {
		t := heap.Pop(&le.expiries).(timed)
		l := le.leases[t.id]
		if l == nil || t.at != l.expiry && t.at != l.revokeAt || l.expiry > now {
			continue // a stale entry
		}
		out = append(out, l.ID)
		l.revokeAt = now + max(le.cfg.RetryTicks, 1)
		heap.Push(&le.expiries, timed{at: l.revokeAt, id: l.ID})
	}
	return out
}

func (le *Lessor) scheduleCheckpoint(l *Lease, now int64) {
	if le.cfg.CheckpointTicks <= 0 || l.remainingSeconds()*le.cfg.TicksPerSecond <= le.cfg.CheckpointTicks {
		return
	}
	// The newest schedule replaces the one before: without that, every
	// applied checkpoint (a renewal's clearing among them) would add a
	// chain of its own, and the lease would be checkpointed once per
	// chain each interval. etcd's lessor lets them pile up so.
	l.checkpointAt = now + le.cfg.CheckpointTicks
	heap.Push(&le.checkpoints, timed{at: l.checkpointAt, id: l.ID})
}

// Checkpoint is a remaining TTL to record through raft.
type Checkpoint struct {
	ID        ID
	Remaining int64
}

// DueCheckpoints returns the checkpoints due at now, at most limit.
func (le *Lessor) DueCheckpoints(now int64, limit int) []Checkpoint {
	if !le.primary {
		return nil
	}
	var out []Checkpoint
	for len(out) < limit && len(le.checkpoints) > 0 && le.checkpoints[0].at <= now {
		t := heap.Pop(&le.checkpoints).(timed)
		l := le.leases[t.id]
		if l == nil || t.at != l.checkpointAt || l.expiry <= now {
			continue
		}
		l.checkpointAt = 0
		if rem := le.Remaining(l, now); rem < l.TTL {
			out = append(out, Checkpoint{ID: l.ID, Remaining: rem})
		}
	}
	return out
}

// Attach and Detach move a key onto or off a lease.
func (le *Lessor) Attach(id ID, key string) {
	if l := le.leases[id]; l != nil {
		l.keys[key] = struct{}{}
	}
}

func (le *Lessor) Detach(id ID, key string) {
	if l := le.leases[id]; l != nil {
		delete(l.keys, key)
	}
}

// timed is a lease due at a tick; ties break by id for determinism.
type timed struct {
	at int64
	id ID
}

type timeHeap []timed

func (h timeHeap) Len() int { return len(h) }
func (h timeHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].id < h[j].id
}
func (h timeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timeHeap) Push(x any)   { *h = append(*h, x.(timed)) }
func (h *timeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// TimeToLive is what etcd reports as a lease's TTL: its remaining time in
// whole seconds, rounded down, on the primary, never more than the granted
// TTL (a new leader's extension is slack, not time granted).
func (le *Lessor) TimeToLive(l *Lease, now int64) int64 {
	if !le.primary || l.expiry == forever {
		return l.remainingSeconds()
	}
	return min(max(l.expiry-now, 0)/le.cfg.TicksPerSecond, l.TTL)
}

// ByExpiry returns the leases soonest to expire first (by id among
// equals, and on members that do not expire leases).
func (le *Lessor) ByExpiry() []*Lease {
	ls := le.Leases()
	slices.SortStableFunc(ls, func(a, b *Lease) int {
		switch {
		case a.expiry < b.expiry:
			return -1
		case a.expiry > b.expiry:
			return 1
		}
		return 0
	})
	return ls
}
