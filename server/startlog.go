package server

import (
	"fmt"
	"log/slog"
	"strings"
)

// etcd's start-up lines. etcd's e2e framework, scripts and operators wait
// for these messages in a member's log ("ready to serve client requests"
// above all), so detcd logs the same messages, with etcd's field names,
// at the moments etcd does.

// logPublished is etcd's line once this start's attributes are applied.
func (s *Server) logPublished() {
	s.log.Info("published local member to cluster through raft",
		"local-member-id", fmt.Sprintf("%x", s.node.ID()),
		"local-member-attributes", fmt.Sprintf("{Name:%s ClientURLs:%v}", s.cfg.Name, s.cfg.AdvertiseClientURLs),
		"cluster-id", fmt.Sprintf("%x", s.node.ClusterID()))
}

// noteClusterVersion logs etcd's lines when the cluster version the
// member has applied is set or changes; on the loop.
func (s *Server) noteClusterVersion() {
	v := s.node.ClusterVersion()
	if v == s.loggedClusterVersion {
		return
	}
	ids := []any{"cluster-id", fmt.Sprintf("%x", s.node.ClusterID()), "local-member-id", fmt.Sprintf("%x", s.node.ID())}
	if s.loggedClusterVersion == "" {
		s.log.Info("set the initial cluster version", append(ids, "cluster-version", majorMinor(v))...)
	} else {
		s.log.Info("updated cluster version", append(ids, "from", majorMinor(s.loggedClusterVersion), "to", majorMinor(v))...)
	}
	s.log.Info("enabled capabilities for version", "cluster-version", majorMinor(v))
	s.loggedClusterVersion = v
}

// majorMinor is how etcd logs a cluster version: "3.7" for "3.7.0".
func majorMinor(v string) string {
	if parts := strings.SplitN(v, ".", 3); len(parts) == 3 {
		return parts[0] + "." + parts[1]
	}
	return v
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
