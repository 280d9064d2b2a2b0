package sim

import (
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/server"
)

// A simulated member is configured as detcd is: the world writes the
// flags a member would get (a server.Config), and the server's own code
// validates them and turns them into core's configuration (and the
// Frontend's). What the world sets apart from the flags is listed in
// worldKnobs.

// simClusterToken is the world's --initial-cluster-token.
const simClusterToken = "sim-cluster"

// requestTimeoutTicks is how long a member waits for a proposal or a read
// index before it answers a timeout: etcd's 5 s and two election
// timeouts, at the world's 100 ms tick and 10-tick election timeout. The
// server's CoreConfig decides it; config checks that they agree.
const requestTimeoutTicks = 50 + 2*10

// peerURL and clientURL are a member's URLs in the world, by name.
func peerURL(name string) string   { return fmt.Sprintf("http://%s:2380", name) }
func clientURL(name string) string { return fmt.Sprintf("http://%s:2379", name) }

// serverConfig is the member's flags: its name and URLs, the world's
// --initial-cluster, and the run's settings as etcd's flags.
func (m *member) serverConfig() server.Config {
	s := m.w.settings
	cfg := server.DefaultConfig()
	cfg.Name, cfg.DataDir = m.name, "data"
	cfg.ListenClientURLs, cfg.AdvertiseClientURLs = []string{clientURL(m.name)}, []string{clientURL(m.name)}
	cfg.ListenPeerURLs, cfg.InitialAdvertisePeerURLs = []string{peerURL(m.name)}, []string{peerURL(m.name)}
	var cluster []string
	for i := 0; i < m.w.opts.Members; i++ {
		name := fmt.Sprintf("m%d", i+1)
		cluster = append(cluster, name+"="+peerURL(name))
	}
	if m.initial != nil {
		// A member added at runtime names the cluster it joins.
		cfg.InitialClusterState, cluster = "existing", nil
		for _, mm := range m.initial {
			name := mm.Name
			if mm.ID == m.id || name == "" {
				// Members not started yet have no name in the list.
				name = fmt.Sprintf("m%d", mm.ID)
			}
			cluster = append(cluster, name+"="+strings.Join(mm.PeerURLs, ","))
		}
	}
	cfg.InitialCluster, cfg.InitialClusterToken = strings.Join(cluster, ","), simClusterToken
	tick := time.Duration(s.TickUs) * time.Microsecond
	cfg.HeartbeatInterval, cfg.ElectionTimeout = tick, time.Duration(s.ElectionTicks)*tick
	cfg.SnapshotCount, cfg.SnapshotCatchUpEntries = s.SnapshotCount, s.CatchUp
	if s.QuotaBytes > 0 {
		cfg.QuotaBackendBytes = s.QuotaBytes
	}
	switch s.Compaction {
	case "periodic":
		cfg.AutoCompactionMode, cfg.AutoCompactionRetention = "periodic", (time.Duration(s.CompactRetention) * tick).String()
	case "revision":
		cfg.AutoCompactionMode, cfg.AutoCompactionRetention = "revision", fmt.Sprint(s.CompactRetention)
	}
	// The lowest cost: the simulator hashes passwords by the thousand,
	// and the cost changes nothing it checks.
	cfg.BcryptCost = bcrypt.MinCost
	if m.w.authOn {
		cfg.AuthToken = m.w.opts.authTokenFlag()
	}
	var gates []string
	if s.InitialCorruptCheck {
		gates = append(gates, "InitialCorruptCheck=true")
	}
	if s.CompactHashCheckUs > 0 {
		gates = append(gates, "CompactHashCheck=true")
		cfg.CompactHashCheckTime = time.Duration(s.CompactHashCheckUs) * time.Microsecond
	}
	cfg.FeatureGates, cfg.CorruptCheckTime = strings.Join(gates, ","), time.Duration(s.CorruptCheckUs)*time.Microsecond
	return cfg
}

// config is the member's core configuration: its flags through the
// server's Validate and CoreConfig, a joining member's cluster adopted as
// the server adopts it, then the world's knobs.
func (m *member) config() (core.Config, error) {
	cfg := m.serverConfig()
	if err := cfg.Validate(); err != nil {
		return core.Config{}, fmt.Errorf("%s: flags: %w", m.name, err)
	}
	cc, err := cfg.CoreConfig(m.rng.Uint64()&^(1<<32-1), nil)
	if err != nil {
		return core.Config{}, fmt.Errorf("%s: flags: %w", m.name, err)
	}
	if m.initial != nil {
		if !cfg.Adopt(&cc, m.w.clusterID(), m.initial) {
			return core.Config{}, fmt.Errorf("%s: not among the members it was added to: %v", m.name, m.initial)
		}
	} else {
		worldIDs(&cc, m.w.clusterID())
	}
	m.flags = cfg
	if cc.RequestTimeoutTicks != requestTimeoutTicks {
		return core.Config{}, fmt.Errorf("%s: request timeout of %d ticks, the world's checks assume %d", m.name, cc.RequestTimeoutTicks, requestTimeoutTicks)
	}
	m.worldKnobs(&cc)
	return cc, nil
}

// worldIDs numbers a new cluster's members as the world does (m3 is 3):
// etcd's ids hash the peer URLs and the cluster token, the world's
// tables, traces and fault schedules name members by number. A member
// added at runtime gets its number from MemberAdd (memberIDFromURL), so
// a joining member's list has them already.
func worldIDs(cc *core.Config, clusterID uint64) {
	for i := range cc.Members {
		id := memberIDFromURL(cc.Members[i].PeerURLs)
		if cc.Members[i].ID == cc.ID {
			cc.ID = id
		}
		cc.Members[i].ID = id
	}
	cc.ClusterID = clusterID
}

// clusterIDOf is the id of the world's cluster of n members, numbered
// from 1, as etcd derives it from its members' ids.
func clusterIDOf(n int) uint64 {
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	return core.ClusterID(ids)
}

// worldKnobs sets what the world tunes that etcd fixes or detcd has no
// flag for, so that short runs see it happen: how often the leader
// checkpoints lease TTLs (etcd: 5 min), how often the revision
// compactor runs (etcd: 5 min), how much must change before a checkpoint
// is written; and its test hooks: the planted bug, the apply checker.
func (m *member) worldKnobs(cc *core.Config) {
	s := m.w.settings
	cc.LeaseCheckpointTicks = s.LeaseCheckpointTicks
	cc.CheckpointMinBytes = s.CheckpointMinBytes
	if cc.AutoCompaction.Mode == "revision" {
		cc.AutoCompaction.IntervalTicks = s.CompactIntervalTicks
	}
	cc.PlantedBug = m.w.opts.PlantedBug
	cc.OnApply = func(index, term uint64, data []byte) { m.w.checks.applied(m, index, term, data) }
}
