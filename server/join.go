package server

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/disk"
)

// joinTimeout bounds asking the existing members who they are; joinRetry
// is the pause between rounds of asking.
const (
	joinTimeout = 10 * time.Second
	joinRetry   = 200 * time.Millisecond
)

func ctxFor(Config) context.Context { return context.Background() }

// joinIfNew prepares a member that joins an existing cluster
// (--initial-cluster-state existing) and has no data yet: it asks the
// members in --initial-cluster for the cluster's id and members, as etcd
// does, and finds itself among them by its peer URLs (an operator added it
// with MemberAdd first). A member with data restarts from it alone.
//
// A new member with --discovery-* learns its cluster from the discovery
// service instead (discovery.go); one with --discovery-srv from DNS
// first (srvcluster.go).
func joinIfNew(ctx context.Context, fsys wal.FS, cfg *Config, ccfg *core.Config, tlsc tlsConfigs, log *slog.Logger) error {
	if cfg.Discovery.enabled() {
		return discoverIfNew(ctx, fsys, cfg, ccfg, log)
	}
	if cfg.srvEnabled() {
		if err := srvClusterIfNew(ctx, fsys, cfg, ccfg, log); err != nil {
			return err
		}
	}
	if cfg.InitialClusterState != "existing" {
		return nil
	}
	if exists, err := disk.HasLog(fsys, "."); err != nil {
		return fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	} else if exists {
		return nil
	}
	var urls []string
	for _, m := range ccfg.Members {
		if m.Name != cfg.Name {
			urls = append(urls, m.PeerURLs...)
		}
	}
	if len(urls) == 0 {
		return fmt.Errorf("--initial-cluster-state existing needs the other members in --initial-cluster")
	}
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	// A member that has not applied the MemberAdd yet (a follower, right
	// after the leader answered it) does not list this one: ask the
	// others, and again, until the time is up.
	var err error
	asker := newPeerDialer(cfg, tlsc)
	for {
		for _, u := range urls {
			var ci clusterInfo
			if ci, err = asker.fetchCluster(ctx, []string{u}); err != nil {
				continue
			}
			if cfg.Adopt(ccfg, ci.ClusterID, ci.Members) {
				log.Info("joining an existing cluster", "member", fmt.Sprintf("%x", ccfg.ID), "cluster", fmt.Sprintf("%x", ci.ClusterID))
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return err
			}
			return fmt.Errorf("this member (peer URLs %v) is not in the cluster: add it with MemberAdd first", cfg.InitialAdvertisePeerURLs)
		case <-time.After(joinRetry):
		}
	}
}

// Adopt makes ccfg join the cluster clusterID whose members are members,
// as the member among them with this member's advertised peer URLs (an
// operator added it with MemberAdd first): the member's id, the cluster's,
// and its member list, with this member's name and client URLs. False if
// no member has these peer URLs. The simulator's joining members take
// their cluster this way too.
func (c *Config) Adopt(ccfg *core.Config, clusterID uint64, members []core.Member) bool {
	self, ok := findSelf(members, c.InitialAdvertisePeerURLs)
	if !ok {
		return false
	}
	ccfg.ID, ccfg.ClusterID, ccfg.Join = self.ID, clusterID, true
	ccfg.Members = slices.Clone(members)
	for i := range ccfg.Members {
		if ccfg.Members[i].ID == self.ID {
			ccfg.Members[i].Name, ccfg.Members[i].ClientURLs = c.Name, c.AdvertiseClientURLs
		}
	}
	return true
}

// findSelf finds the member with these peer URLs.
func findSelf(members []core.Member, peerURLs []string) (core.Member, bool) {
	mine := slices.Clone(peerURLs)
	slices.Sort(mine)
	for _, m := range members {
		theirs := slices.Clone(m.PeerURLs)
		slices.Sort(theirs)
		if slices.Equal(mine, theirs) {
			return m, true
		}
	}
	return core.Member{}, false
}
