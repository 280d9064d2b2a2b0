package core

import "fmt"

// Planted bugs, for proving that the simulator's checkers bite. They exist
// only in builds with the detcdbugs tag; Config.Validate refuses them
// elsewhere.
const (
	// BugAckBeforeFsync treats a log write as durable as soon as it is
	// handed to the driver: raft may commit, and the member acknowledge,
	// writes that a crash then loses.
	BugAckBeforeFsync = "ack-before-fsync"
	// BugStaleRead serves linearizable reads from the member's own state
	// without a ReadIndex round, so a partitioned member answers stale.
	BugStaleRead = "stale-read"
)

// PlantedBugs lists the bugs a detcdbugs build can plant.
var PlantedBugs = []string{BugAckBeforeFsync, BugStaleRead}

func validateBug(name string) error {
	if name == "" {
		return nil
	}
	if !bugsEnabled {
		return fmt.Errorf("core: planted bug %q needs a build with -tags detcdbugs", name)
	}
	for _, b := range PlantedBugs {
		if b == name {
			return nil
		}
	}
	return fmt.Errorf("core: unknown planted bug %q", name)
}

func (n *Node) bug(name string) bool { return bugsEnabled && n.cfg.PlantedBug == name }

// PlantedBugsAvailable reports whether this build can plant bugs.
func PlantedBugsAvailable() bool { return bugsEnabled }
