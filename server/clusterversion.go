package server

import (
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
	c.current.Store(&v)
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
