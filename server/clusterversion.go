package server

import (
	"encoding/json"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/version"
)

// clusterVersion is the cluster version the member has applied, for
// /version and etcd_cluster_version (1 for the version in force, 0 for
// those it had before). The loop sets it; handlers and scrapes read it.
type clusterVersion struct {
	current atomic.Pointer[string] // nil until the leader set one
	gauge   *prometheus.GaugeVec
}

func newClusterVersion() *clusterVersion {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "etcd_cluster_version", Help: "Which version is running. 1 for 'cluster_version' label with current cluster version"}, []string{"cluster_version"})
	// The gauge starts at the version detcd runs, as etcd's.
	g.WithLabelValues(version.Cluster(ClusterVersion)).Set(1)
	return &clusterVersion{gauge: g}
}

// set notes the applied cluster version v ("" while none is); on the
// loop.
func (c *clusterVersion) set(v string) {
	if v == "" {
		return
	}
	old := ClusterVersion
	if p := c.current.Load(); p != nil {
		if *p == v {
			return
		}
		old = *p
	}
	// A copy: taking v's address would move v to the heap on every
	// call, and this runs after every turn of the loop.
	applied := v
	c.current.Store(&applied)
	if old != v {
		c.gauge.WithLabelValues(version.Cluster(old)).Set(0)
	}
	c.gauge.WithLabelValues(version.Cluster(v)).Set(1)
}

// get is the applied cluster version, false before the leader set one.
func (c *clusterVersion) get() (string, bool) {
	if p := c.current.Load(); p != nil {
		return *p, true
	}
	return "", false
}

// VersionInfo is /version's answer.
type VersionInfo struct {
	Server  string `json:"etcdserver"`
	Cluster string `json:"etcdcluster"`
	Storage string `json:"storage"`
}

// handler serves GET /version as etcd's does, on the client and the peer
// addresses: the applied cluster version, "not_decided" before the leader
// set one; etcd's storage version follows it.
func (c *clusterVersion) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !onlyGet(w, r) {
			return
		}
		info := VersionInfo{Server: Version, Cluster: "not_decided", Storage: "unknown"}
		if v, ok := c.get(); ok {
			info.Cluster, info.Storage = v, v
		}
		b, _ := json.Marshal(info)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b) // as etcd's, without a newline
	})
}
