package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Options choose a run. Together with the code they decide it entirely.
type Options struct {
	Seed    uint64
	Members int
	Clients int
	// Watchers are clients that each keep one watch open.
	Watchers int
	// LeaseClients are clients that each hold a lease with keys on it.
	LeaseClients int
	// AuthClients are administrators changing users, roles and
	// permissions (0 in runs from before they existed).
	AuthClients int `json:",omitempty"`
	// Operators are clients calling the Maintenance service (status,
	// alarms, defragment, hashes, leader moves) and recovering from a
	// NOSPACE alarm (0 in runs from before they existed; Drawn: the
	// seed decides). With operators, some seeds draw a small quota.
	Operators int `json:",omitempty"`
	// LockClients are clients taking locks and running for leader
	// through the Lock and Election services, on leases they keep alive
	// (lockclient.go); 0 in runs from before they existed, Drawn: the
	// seed decides.
	LockClients int `json:",omitempty"`
	// Duration is the safety phase: the workload runs under faults.
	Duration time.Duration
	// Faults is the fault mix.
	Faults Faults
	// Liveness bounds the liveness phase: once faults stop, every member
	// must converge within it.
	Liveness time.Duration
	// KeepFaulty says whether the liveness phase leaves a minority of the
	// voters crashed or cut off, as TigerBeetle's VOPR does, instead of
	// healing everything: "on", "off", or "" for a quarter of the seeds,
	// chosen from the seed.
	KeepFaulty string `json:",omitempty"`
	// AuthOn says whether the world turns auth on before the workload
	// starts, so that every client logs in and sends a token: "on",
	// "off", or "" for a third of the seeds, chosen from the seed.
	AuthOn string `json:",omitempty"`
	// AuthToken is the members' --auth-token kind with auth on: "simple",
	// "jwt", or "" for half the seeds each, chosen from the seed
	// (authtoken.go).
	AuthToken string `json:",omitempty"`
	// CorruptCheck turns the corruption checks (corruptcheck.go) "on" or
	// "off"; empty draws each from the seed.
	CorruptCheck string `json:",omitempty"`
	// LargeStore says whether the store is large, so that a snapshot
	// takes many election timeouts to send (snapbw.go): "on", "off", or
	// "" for a quarter of the seeds, chosen from the seed.
	LargeStore string `json:",omitempty"`
	// Restore says whether an operator now and then restores the whole
	// cluster from its newest backup (restore.go): "on", "off", or ""
	// for a quarter of the seeds with operators, chosen from the seed.
	Restore string `json:",omitempty"`
	// PlantedBug plants a core bug (detcdbugs builds only).
	PlantedBug string `json:",omitempty"`
	// Compaction pins the members' auto compaction ("never", "periodic"
	// or "revision"); empty draws it from the seed.
	Compaction string `json:",omitempty"`
	// LeaseCheckpoint pins how often remaining lease TTLs are
	// checkpointed; 0 draws it from the seed.
	LeaseCheckpoint time.Duration `json:",omitempty"`
	// Weights pins the workload's odds (formatWeights); empty draws them.
	Weights string `json:",omitempty"`
	// Schedule, if not nil, replaces the faults drawn from the seed with
	// these: property tests generate (and shrink) schedules.
	Schedule []ScheduledFault `json:",omitempty"`
}

// ScheduledFault is one fault at a virtual time: kind k on member Member
// (an index) lasting ForUs where it lasts.
type ScheduledFault struct {
	AtUs   int64
	Kind   Faults
	Member int
	ForUs  int64
}

// DefaultOptions are a fixed world's: 3 members, 8 clients, 3 watchers, 2
// lease clients, 2 lock clients (the settings are still drawn from the
// seed).
func DefaultOptions() Options {
	return Options{Members: 3, Clients: 8, Watchers: 3, LeaseClients: 2, LockClients: 2, Duration: 60 * time.Second, Faults: AllFaults, Liveness: 60 * time.Second}
}

// Drawn marks a world-shape option (Members, Clients: 0; Watchers,
// LeaseClients: Drawn) that the seed decides.
const Drawn = -1

// SwarmOptions are detcd-sim's defaults: each seed draws its own world
// (members, clients, watchers, lease clients, operators, lock clients),
// as swarm testing does.
func SwarmOptions() Options {
	o := DefaultOptions()
	o.Members, o.Clients, o.Watchers, o.LeaseClients, o.Operators, o.LockClients = 0, 0, Drawn, Drawn, Drawn, Drawn
	return o
}

// drawShape fills in the world-shape options left to the seed. It draws
// every one whether pinned or not, so pinning one leaves the others.
func (o Options) drawShape(r *rand.Rand) Options {
	members := []int{1, 3, 3, 3, 5, 5}[r.IntN(6)]
	u := r.Float64()
	clients := min(int(math.Exp2(8*u*u)), clientsMax) // skewed to few: median 4
	watchers, leasers := r.IntN(6), r.IntN(5)
	operators := r.IntN(3) // drawn after the above, so their draws stay as they were
	lockers := r.IntN(4)
	if o.Members == 0 {
		o.Members = members
	}
	if o.Clients == 0 {
		o.Clients = clients
	}
	if o.Watchers == Drawn {
		o.Watchers = watchers
	}
	if o.LeaseClients == Drawn {
		o.LeaseClients = leasers
	}
	if o.Operators == Drawn {
		o.Operators = operators
	}
	if o.LockClients == Drawn {
		o.LockClients = lockers
	}
	return o
}

// pin overrides drawn settings with the ones the options fix.
func (o Options) pin(s *Settings) {
	if o.Compaction != "" {
		*s = s.withCompaction(o.Compaction)
	}
	if o.LeaseCheckpoint > 0 {
		s.LeaseCheckpointTicks = max(o.LeaseCheckpoint.Microseconds()/s.TickUs, 1)
	}
	if o.Weights != "" {
		s.Weights, _ = parseWeights(o.Weights) // Validate checked it
	}
}

// Validate checks the options.
func (o Options) Validate() error {
	switch {
	case o.Members != 0 && o.Members != 1 && o.Members != 3 && o.Members != 5:
		return fmt.Errorf("sim: members must be 1, 3 or 5 (0: drawn), not %d", o.Members)
	case o.Clients < 0 || o.Clients > clientsMax:
		return fmt.Errorf("sim: clients must be in 1..%d (0: drawn)", clientsMax)
	case o.Watchers < Drawn || o.Watchers > clientsMax:
		return fmt.Errorf("sim: watchers must be in 0..%d (-1: drawn)", clientsMax)
	case o.LeaseClients < Drawn || o.LeaseClients > clientsMax:
		return fmt.Errorf("sim: lease clients must be in 0..%d", clientsMax)
	case o.AuthClients < 0 || o.AuthClients > clientsMax:
		return fmt.Errorf("sim: auth clients must be in 0..%d", clientsMax)
	case o.Operators < Drawn || o.Operators > clientsMax:
		return fmt.Errorf("sim: operators must be in 0..%d (-1: drawn)", clientsMax)
	case o.LockClients < Drawn || o.LockClients > clientsMax:
		return fmt.Errorf("sim: lock clients must be in 0..%d (-1: drawn)", clientsMax)
	case o.Duration <= 0 || o.Duration > durationMax:
		return fmt.Errorf("sim: duration must be in (0, %v]", durationMax)
	case o.Liveness <= 0:
		return errors.New("sim: liveness bound must be positive")
	case o.KeepFaulty != "" && o.KeepFaulty != "on" && o.KeepFaulty != "off":
		return fmt.Errorf("sim: keep-faulty must be on, off or empty (from the seed), not %q", o.KeepFaulty)
	case o.AuthOn != "" && o.AuthOn != "on" && o.AuthOn != "off":
		return fmt.Errorf("sim: auth-on must be on, off or empty (from the seed), not %q", o.AuthOn)
	case o.AuthToken != "" && o.AuthToken != "simple" && o.AuthToken != "jwt":
		return fmt.Errorf("sim: auth-token must be simple, jwt or empty (from the seed), not %q", o.AuthToken)
	case o.CorruptCheck != "" && o.CorruptCheck != "on" && o.CorruptCheck != "off":
		return fmt.Errorf("sim: corrupt-check must be on, off or empty (from the seed), not %q", o.CorruptCheck)
	case o.LargeStore != "" && o.LargeStore != "on" && o.LargeStore != "off":
		return fmt.Errorf("sim: large-store must be on, off or empty (from the seed), not %q", o.LargeStore)
	case o.Restore != "" && o.Restore != "on" && o.Restore != "off":
		return fmt.Errorf("sim: restore must be on, off or empty (from the seed), not %q", o.Restore)
	case o.Compaction != "" && !slices.Contains(compactionModes, o.Compaction):
		return fmt.Errorf("sim: compaction must be %s or empty (from the seed), not %q", strings.Join(compactionModes, ", "), o.Compaction)
	case o.LeaseCheckpoint < 0:
		return errors.New("sim: lease checkpoint interval must not be negative")
	}
	if o.Weights != "" {
		if _, err := parseWeights(o.Weights); err != nil {
			return err
		}
	}
	for _, f := range o.Schedule {
		if f.AtUs < 0 || f.ForUs < 0 || f.Member < 0 || f.Kind == 0 || f.Kind >= faultsEnd || f.Kind&(f.Kind-1) != 0 {
			return fmt.Errorf("sim: bad scheduled fault %+v", f)
		}
	}
	return nil
}

// String prints the options as the flags that reproduce them.
func (o Options) String() string {
	s := fmt.Sprintf("--seed %d --members %d --clients %d --watchers %d --leases %d --duration %v --faults %s --liveness %v",
		o.Seed, o.Members, o.Clients, o.Watchers, o.LeaseClients, o.Duration, o.Faults, o.Liveness)
	if o.AuthClients > 0 {
		s += fmt.Sprintf(" --auth %d", o.AuthClients)
	}
	// Always: with no flag the seed draws them, so a pinned 0 must show.
	s += fmt.Sprintf(" --operators %d --locks %d", o.Operators, o.LockClients)
	if o.KeepFaulty != "" {
		s += " --keep-faulty " + o.KeepFaulty
	}
	if o.AuthOn != "" {
		s += " --auth-on " + o.AuthOn
	}
	if o.AuthToken != "" {
		s += " --auth-token " + o.AuthToken
	}
	if o.LargeStore != "" {
		s += " --large-store " + o.LargeStore
	}
	if o.Restore != "" {
		s += " --restore " + o.Restore
	}
	if o.Compaction != "" {
		s += " --compaction " + o.Compaction
	}
	if o.LeaseCheckpoint > 0 {
		s += fmt.Sprintf(" --lease-checkpoint %v", o.LeaseCheckpoint)
	}
	if o.Weights != "" {
		s += " --weights " + o.Weights
	}
	if o.CorruptCheck != "" {
		s += " --corrupt-check " + o.CorruptCheck
	}
	if o.PlantedBug != "" {
		s += " --bug " + o.PlantedBug
	}
	for _, f := range o.Schedule {
		s += fmt.Sprintf(" --at %dus:%s:m%d:%dus", f.AtUs, f.Kind, f.Member+1, f.ForUs)
	}
	return s
}

// authEnabled reports whether the world turns auth on: as the option
// says, or, left empty, for a third of the seeds (a hash of the seed).
func (o Options) authEnabled() bool {
	switch o.AuthOn {
	case "on":
		return true
	case "off":
		return false
	}
	return seedHash(o.Seed^0xa17)%3 == 0
}

// seedHash mixes a seed (splitmix64's finalizer) for choices made from
// it without drawing from any component's PRNG.
func seedHash(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// keepsFaulty reports whether the liveness phase keeps a faulty minority:
// as the option says, or, left empty, for a quarter of the seeds (a hash
// of the seed, so no component's draws shift).
func (o Options) keepsFaulty() bool {
	switch o.KeepFaulty {
	case "on":
		return true
	case "off":
		return false
	}
	return seedHash(o.Seed)%4 == 0
}

const (
	clientsMax  = 256
	durationMax = 24 * time.Hour
)

// Faults is a set of fault kinds.
type Faults uint32

// The fault kinds.
const (
	FaultPartition  Faults = 1 << iota // symmetric partitions, leader isolation
	FaultOneWay                        // one-way link cuts
	FaultNetwork                       // loss, duplication, reordering, latency tails
	FaultCrash                         // crash and restart of a member, losing unsynced writes
	FaultTorn                          // crashes tear the last unsynced write
	FaultFsync                         // fsync failures (the member dies and restarts)
	FaultSlowDisk                      // slow disks
	FaultClock                         // clock drift and jumps
	FaultPause                         // process pauses
	FaultPowerLoss                     // every member crashes at once
	FaultMembership                    // members added (as learners, then promoted), removed, replaced
	// The kinds below damage a member's data and are only in runs that
	// name them (all,walwipe,rot,garbage): the member must (for garbage,
	// may) refuse to start.
	FaultWALWipe // an operator deletes a stopped member's WAL
	FaultRot     // a bit rots in a stopped member's synced data: a log segment or its checkpoint
	FaultGarbage // a crash leaves the sector its log was writing as garbage

	faultsEnd
)

// AllFaults is every kind that keeps each member's data: "all".
const AllFaults = FaultMembership<<1 - 1

var faultNames = []string{"partition", "oneway", "network", "crash", "torn", "fsync", "slowdisk", "clock", "pause", "powerloss", "membership", "walwipe", "rot", "garbage"}

// Has reports whether f includes k.
func (f Faults) Has(k Faults) bool { return f&k != 0 }

func (f Faults) String() string {
	if f == 0 {
		return "none"
	}
	var names []string
	if f&AllFaults == AllFaults {
		names, f = append(names, "all"), f&^AllFaults
	}
	for i, n := range faultNames {
		if f.Has(1 << i) {
			names = append(names, n)
		}
	}
	return strings.Join(names, ",")
}

// ParseFaults reads "none" or a comma-separated list of kinds, where "all"
// stands for AllFaults.
func ParseFaults(s string) (Faults, error) {
	if s == "none" || s == "" {
		return 0, nil
	}
	var f Faults
	for _, n := range strings.Split(s, ",") {
		if strings.TrimSpace(n) == "all" {
			f |= AllFaults
			continue
		}
		i := slices.Index(faultNames, strings.TrimSpace(n))
		if i < 0 {
			return 0, fmt.Errorf("sim: unknown fault %q (known: all, none, %s)", n, strings.Join(faultNames, ", "))
		}
		f |= 1 << i
	}
	return f, nil
}

// MarshalText makes Faults readable in seed files.
func (f Faults) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText reads what MarshalText wrote.
func (f *Faults) UnmarshalText(b []byte) error {
	v, err := ParseFaults(string(b))
	*f = v
	return err
}
