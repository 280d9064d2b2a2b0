package server

import (
	"fmt"
	"log/slog"

	"go.etcd.io/etcd/api/v3/version"
)

// etcd's start-up lines. etcd's e2e framework, scripts and operators wait
// for these messages in a member's log ("ready to serve client requests"
// above all), so detcd logs the same messages, with etcd's field names,
// at the moments etcd does.

// startLines logs a member's start-up lines; on the loop.
type startLines struct {
	log                 *slog.Logger
	memberID, clusterID string // in hexadecimal
	attributes          string // the member's name and client URLs
	// loggedVersion is the cluster version last logged.
	loggedVersion string
}

func newStartLines(log *slog.Logger, cfg *Config, memberID, clusterID uint64) startLines {
	return startLines{log: log, memberID: fmt.Sprintf("%x", memberID), clusterID: fmt.Sprintf("%x", clusterID),
		attributes: fmt.Sprintf("{Name:%s ClientURLs:%v}", cfg.Name, cfg.AdvertiseClientURLs)}
}

// published is etcd's line once this start's attributes are applied.
func (l *startLines) published() {
	l.log.Info("published local member to cluster through raft",
		"local-member-id", l.memberID, "local-member-attributes", l.attributes, "cluster-id", l.clusterID)
}

// clusterVersion logs etcd's lines when the cluster version the member
// has applied is set or changes.
func (l *startLines) clusterVersion(v string) {
	if v == l.loggedVersion {
		return
	}
	ids := []any{"cluster-id", l.clusterID, "local-member-id", l.memberID}
	if l.loggedVersion == "" {
		l.log.Info("set the initial cluster version", append(ids, "cluster-version", version.Cluster(v))...)
	} else {
		l.log.Info("updated cluster version", append(ids, "from", version.Cluster(l.loggedVersion), "to", version.Cluster(v))...)
	}
	l.log.Info("enabled capabilities for version", "cluster-version", version.Cluster(v))
	l.loggedVersion = v
}

// logServingClients is etcd's pair of lines when a client listener starts
// serving; traffic is "grpc+http", "grpc" or "http".
func logServingClients(log *slog.Logger, addr string, secure bool, traffic string) {
	log.Info("ready to serve client requests")
	if secure {
		log.Info("serving client traffic securely", "traffic", traffic, "address", addr)
		return
	}
	log.Info("serving client traffic insecurely; this is strongly discouraged!", "traffic", traffic, "address", addr)
}
