package lease

import (
	"slices"
	"testing"
)

func testLessor() *Lessor {
	return New(Config{TicksPerSecond: 10, MinTTL: 2, CheckpointTicks: 3000, RevokesPerTick: 100, RetryTicks: 30})
}

func TestGrantErrorsAndMinTTL(t *testing.T) {
	le := testLessor()
	if _, err := le.Grant(0, 10, 0); err != ErrNotFound {
		t.Fatalf("lease 0: %v", err)
	}
	if _, err := le.Grant(1, MaxTTL+1, 0); err != ErrTTLTooLarge {
		t.Fatalf("too large: %v", err)
	}
	l, err := le.Grant(1, 1, 0)
	if err != nil || l.TTL != 2 {
		t.Fatalf("min TTL: %v %v", l, err)
	}
	if _, err := le.Grant(1, 5, 0); err != ErrExists {
		t.Fatalf("duplicate: %v", err)
	}
}

func TestExpiryOnlyOnPrimary(t *testing.T) {
	le := testLessor()
	le.Grant(1, 5, 0)
	le.Grant(2, 10, 0)
	if got := le.Expired(1000, 10); got != nil {
		t.Fatalf("a follower expired %v", got)
	}
	le.Promote(100, 20) // lease 1 expires at 100+1+20+50=171, lease 2 at 221
	if got := le.Expired(170, 10); len(got) != 0 {
		t.Fatalf("early: %v", got)
	}
	if got := le.Expired(171, 10); !slices.Equal(got, []ID{1}) {
		t.Fatalf("at expiry: %v", got)
	}
	if got := le.Expired(181, 10); len(got) != 0 {
		t.Fatalf("a pending revoke came back before the retry interval: %v", got)
	}
	if got := le.Expired(231, 10); !slices.Equal(got, []ID{1, 2}) {
		t.Fatalf("retry and second lease: %v", got)
	}
	if ttl, err := le.Renew(2, 231); err != ErrNotFound || ttl != -1 {
		t.Fatalf("renewing an expired lease: %d %v", ttl, err)
	}
	le.Demote()
	if _, err := le.Renew(1, 231); err != ErrNotPrimary {
		t.Fatalf("renew on a demoted lessor: %v", err)
	}
}

func TestRenewAndRemaining(t *testing.T) {
	le := testLessor()
	le.Promote(0, 0)
	l, _ := le.Grant(7, 10, 0)
	if r := le.TimeToLive(l, 35); r != 6 {
		t.Fatalf("time to live at 3.5s of 10s: %d", r)
	}
	if ttl, err := le.Renew(7, 50); err != nil || ttl != 10 {
		t.Fatalf("renew: %d %v", ttl, err)
	}
	if r := le.TimeToLive(l, 50); r != 10 {
		t.Fatalf("after renew: %d", r)
	}
	keys, err := le.Revoke(7)
	if err != nil || len(keys) != 0 || le.Lookup(7) != nil {
		t.Fatalf("revoke: %v %v", keys, err)
	}
}

// TestCheckpointedLeaseIsNotRenewedToFull: a new leader extends a lease
// from its checkpointed remaining TTL, not its full TTL (etcd #9395).
func TestCheckpointedLeaseIsNotRenewedToFull(t *testing.T) {
	le := testLessor()
	le.Promote(0, 0)
	le.Grant(1, 1000, 0)
	cps := le.DueCheckpoints(3000, 10)
	if len(cps) != 1 || cps[0].Remaining != 701 {
		t.Fatalf("checkpoints at 300s of 1000s: %+v", cps)
	}
	le.Checkpoint(1, 700, 3000)
	le.Demote()
	le.Promote(4000, 20)
	if r := le.Remaining(le.Lookup(1), 4000); r != 703 {
		t.Fatalf("promoted remaining: %d, want 700 plus the 2 s extension (and the tick in hand)", r)
	}
}

// A lease has one pending checkpoint: each applied checkpoint (a
// renewal's clearing among them) reschedules it, not adds another.
func TestCheckpointsDoNotPileUp(t *testing.T) {
	le := testLessor()
	le.Promote(0, 0)
	le.Grant(1, 1000, 0)
	le.Checkpoint(1, 0, 100) // a renewal's clearing, applied
	if cps := le.DueCheckpoints(3000, 10); len(cps) != 0 {
		t.Fatalf("checkpoints at 300 s, rescheduled at 10 s to 310 s: %+v", cps)
	}
	cps := le.DueCheckpoints(3100, 10)
	if len(cps) != 1 {
		t.Fatalf("checkpoints at 310 s: %+v, want one", cps)
	}
	le.Checkpoint(1, cps[0].Remaining, 3100)
	le.Checkpoint(1, cps[0].Remaining, 3100) // the same tick twice
	if cps := le.DueCheckpoints(6200, 10); len(cps) != 1 {
		t.Fatalf("checkpoints at 620 s: %+v, want one", cps)
	}
	if n := len(le.checkpoints); n != 0 {
		t.Fatalf("%d checkpoint timers left, want none", n)
	}
}

func TestPromoteSpreadsExpiries(t *testing.T) {
	le := New(Config{TicksPerSecond: 10, RevokesPerTick: 10}) // 75 per second after spreading
	for i := 1; i <= 1000; i++ {
		le.Grant(ID(i), 10, 0)
	}
	le.Promote(0, 0)
	perSecond := map[int64]int{}
	for _, l := range le.Leases() {
		perSecond[l.expiry/10]++
	}
	for s, n := range perSecond {
		if n > 100 {
			t.Fatalf("%d leases expire in second %d", n, s)
		}
	}
}

func TestAttachDetach(t *testing.T) {
	le := testLessor()
	le.Grant(1, 10, 0)
	le.Attach(1, "b")
	le.Attach(1, "a")
	le.Attach(9, "ignored")
	le.Detach(1, "b")
	if ks := le.Lookup(1).Keys(); !slices.Equal(ks, []string{"a"}) {
		t.Fatalf("keys: %v", ks)
	}
}
