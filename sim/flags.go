package sim

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// RegisterFlags adds the flags that choose a run to fs, with o's values as
// defaults; the returned function finishes parsing after fs.Parse.
func (o *Options) RegisterFlags(fs *flag.FlagSet) func() error {
	faults := fs.String("faults", o.Faults.String(), "fault mix: all, none, or a comma-separated list of all and "+strings.Join(faultNames, ", ")+" (all leaves out walwipe, rot and garbage)")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "the seed that decides everything")
	fs.IntVar(&o.Members, "members", o.Members, "members in the cluster (1, 3 or 5; 0: drawn from the seed)")
	fs.IntVar(&o.Clients, "clients", o.Clients, "concurrent simulated clients (0: drawn from the seed, 1..256 skewed to few)")
	fs.IntVar(&o.Watchers, "watchers", o.Watchers, "simulated clients that each keep a watch open (-1: drawn from the seed)")
	fs.IntVar(&o.LeaseClients, "leases", o.LeaseClients, "simulated clients that each hold a lease with keys on it (-1: drawn from the seed)")
	fs.IntVar(&o.AuthClients, "auth", o.AuthClients, "simulated administrators changing users, roles and permissions")
	fs.IntVar(&o.Operators, "operators", o.Operators, "simulated operators calling the Maintenance service and recovering from NOSPACE (-1: drawn from the seed)")
	fs.IntVar(&o.LockClients, "locks", o.LockClients, "simulated clients taking locks and running for leader through the Lock and Election services (-1: drawn from the seed)")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "simulated length of the safety phase (faults on)")
	fs.DurationVar(&o.Liveness, "liveness", o.Liveness, "bound on the liveness phase: members must converge within it")
	fs.StringVar(&o.KeepFaulty, "keep-faulty", o.KeepFaulty, "whether the liveness phase leaves a minority of voters crashed or cut off: on, off, or empty for a quarter of the seeds")
	fs.StringVar(&o.Compaction, "compaction", o.Compaction, "the members' auto compaction: never, periodic or revision (empty: drawn from the seed)")
	fs.DurationVar(&o.LeaseCheckpoint, "lease-checkpoint", o.LeaseCheckpoint, "how often remaining lease TTLs are checkpointed (0: drawn from the seed)")
	fs.StringVar(&o.Weights, "weights", o.Weights, "the workload's odds per operation kind, KIND=N,... (empty: drawn from the seed; kinds left out get 0)")
	fs.StringVar(&o.AuthOn, "auth-on", o.AuthOn, "whether auth is on, every client logging in and sending tokens: on, off, or empty for a third of the seeds")
	fs.StringVar(&o.AuthToken, "auth-token", o.AuthToken, "the members' --auth-token with auth on: simple, jwt (etcd's JWT tokens, the server's provider), or empty for half the seeds each")
	fs.StringVar(&o.CorruptCheck, "corrupt-check", o.CorruptCheck, "whether members run etcd's corruption checks (initial, periodic, compaction hash): on, off, or empty for each drawn from the seed")
	fs.StringVar(&o.Restore, "restore", o.Restore, "whether an operator now and then restores the whole cluster from its newest backup, in a new epoch: on, off, or empty for a quarter of the seeds with operators")
	fs.StringVar(&o.LargeStore, "large-store", o.LargeStore, "whether the store is large, a snapshot taking many election timeouts to send: on, off, or empty for a quarter of the seeds")
	fs.StringVar(&o.PlantedBug, "bug", o.PlantedBug, "plant a core bug (binaries built with -tags detcdbugs only)")
	fs.Var((*scheduleFlag)(&o.Schedule), "at", "a scheduled fault `TIMEus:KIND:mN:FORus`, replacing the seed's fault schedule (repeatable)")
	return func() (err error) {
		o.Faults, err = ParseFaults(*faults)
		return err
	}
}

// ParseOptions reads run options from flags, as Options.String prints them.
// What the flags leave out is drawn from the seed, as `detcd-sim run`
// does, so that a seed file's line replays the world the command line
// gives.
func ParseOptions(args []string) (Options, error) {
	o := SwarmOptions()
	fs := flag.NewFlagSet("options", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	finish := o.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("sim: unexpected argument %q", fs.Arg(0))
	}
	if err := finish(); err != nil {
		return o, err
	}
	return o, o.Validate()
}

type scheduleFlag []ScheduledFault

func (s *scheduleFlag) String() string { return "" }

func (s *scheduleFlag) Set(v string) error {
	parts := strings.Split(v, ":")
	if len(parts) != 4 {
		return fmt.Errorf("want TIMEus:KIND:mN:FORus, got %q", v)
	}
	at, err1 := strconv.ParseInt(strings.TrimSuffix(parts[0], "us"), 10, 64)
	kind, err2 := ParseFaults(parts[1])
	member, err3 := strconv.Atoi(strings.TrimPrefix(parts[2], "m"))
	dur, err4 := strconv.ParseInt(strings.TrimSuffix(parts[3], "us"), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || member < 1 {
		return fmt.Errorf("bad scheduled fault %q", v)
	}
	*s = append(*s, ScheduledFault{AtUs: at, Kind: kind, Member: member - 1, ForUs: dur})
	return nil
}
