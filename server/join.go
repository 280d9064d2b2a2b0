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
			if m, ok := findSelf(ci, cfg.InitialAdvertisePeerURLs); ok {
				ccfg.ID, ccfg.ClusterID, ccfg.Join = m.ID, ci.ClusterID, true
				ccfg.Members = ci.Members
				for i := range ccfg.Members {
					if ccfg.Members[i].ID == m.ID {
						ccfg.Members[i].Name, ccfg.Members[i].ClientURLs = cfg.Name, cfg.AdvertiseClientURLs
					}
				}
				log.Info("joining an existing cluster", "member", fmt.Sprintf("%x", m.ID), "cluster", fmt.Sprintf("%x", ci.ClusterID))
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

// findSelf finds the member with these peer URLs.
func findSelf(ci clusterInfo, peerURLs []string) (core.Member, bool) {
	mine := slices.Clone(peerURLs)
	slices.Sort(mine)
	for _, m := range ci.Members {
		theirs := slices.Clone(m.PeerURLs)
		slices.Sort(theirs)
		if slices.Equal(mine, theirs) {
			return m, true
		}
	}
	return core.Member{}, false
}
