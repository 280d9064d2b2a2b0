package sim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/detcd/detcd/server"
)

// Health probes: a monitor asks every member, once a second of its
// incarnation, etcd's health endpoints, as a load balancer or Kubernetes
// does, in turn /health, /readyz, /livez, /health?serializable=true and
// /version. The server's handlers (server.Instruments.HealthHandler and
// VersionHandler) answer, run as a task in the world over the member's
// Frontend, so their reads wait in virtual time. A member that says it
// is healthy after a linearizable read must have applied everything
// committed anywhere when the probe was sent (checkHealthy); /version
// must name the cluster version the member applied (checkVersion).

// healthProbeEveryUs is how often a member is probed.
const healthProbeEveryUs = 1_000_000

// healthProbePaths are the probes' requests, in turn; linearizable says
// which read a linearizable read.
var healthProbePaths = []struct {
	path         string
	linearizable bool
}{{"/health", true}, {"/readyz", true}, {"/livez", false}, {"/health?serializable=true", false}, {"/version", false}}

// healthProbeURLs are the probes' paths parsed, once: parsing a request
// per probe cost a run more than the probes' checks.
var healthProbeURLs = func() []*url.URL {
	us := make([]*url.URL, len(healthProbePaths))
	for i, p := range healthProbePaths {
		us[i] = &url.URL{Path: p.path}
		us[i].Path, us[i].RawQuery, _ = strings.Cut(p.path, "?")
	}
	return us
}()

// startHealthProbes probes this incarnation of the member until it ends.
func (m *member) startHealthProbes() {
	m.inst.SimulatedTime()
	h, inc := http.NewServeMux(), m.inc
	h.Handle("/version", m.inst.VersionHandler())
	h.Handle("/", m.inst.HealthHandler(m.front))
	var probe func(n int)
	probe = func(n int) {
		m.w.after(healthProbeEveryUs, func() {
			if m.inc != inc || !m.up {
				return
			}
			m.probeHealth(h, n)
			probe(n + 1)
		})
	}
	probe(0)
}

// probeHealth sends the member the nth probe.
func (m *member) probeHealth(h http.Handler, n int) {
	w, inc := m.w, m.inc
	i := n % len(healthProbePaths)
	p := healthProbePaths[i]
	req := &http.Request{Method: http.MethodGet, URL: healthProbeURLs[i], Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	committed := w.maxCommit()
	w.spawn(func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if p.path == "/version" {
			if m.inc == inc && m.up {
				w.checks.checkVersion(m, rec.Body.Bytes())
			}
			return
		}
		healthy := rec.Code == http.StatusOK && healthyBody(rec.Body.String())
		if !healthy {
			w.trace.logf(w.now, "%s %s: %d %s", m.name, p.path, rec.Code, strings.TrimSpace(rec.Body.String()))
		}
		if healthy && p.linearizable && m.inc == inc && m.up {
			m.healthyProbes++
			w.checks.checkHealthy(m, p.path, committed)
		}
	})
}

// healthyBody reads a 200 answer: /health's JSON says so, the others say
// "ok".
func healthyBody(body string) bool {
	var h struct{ Health string }
	if json.Unmarshal([]byte(body), &h) == nil {
		return h.Health == "true"
	}
	return body == "ok\n"
}

// maxCommit is the highest index any running member knows committed.
func (w *World) maxCommit() uint64 {
	var c uint64
	for _, m := range w.members {
		if m.up && m.node != nil {
			c = max(c, m.node.Commit())
		}
	}
	return c
}

// checkHealthy: a member that answered a probe healthy after a
// linearizable read has applied at least what was committed when the
// probe was sent, as the read index it waited for is at least that.
func (c *checkers) checkHealthy(m *member, path string, committed uint64) {
	if applied := m.node.AppliedIndex(); applied < committed {
		c.fail("health: %s answered %s healthy with index %d applied, but %d was committed when it was asked", m.name, path, applied, committed)
	}
}

// checkVersion: /version names the server's version and the cluster
// version the member applied ("not_decided" before it applied one).
func (c *checkers) checkVersion(m *member, body []byte) {
	var got server.VersionInfo
	want := server.VersionInfo{Server: server.Version, Cluster: m.node.ClusterVersion(), Storage: m.node.ClusterVersion()}
	if want.Cluster == "" {
		want.Cluster, want.Storage = "not_decided", "unknown"
	}
	if err := json.Unmarshal(body, &got); err != nil || got != want {
		c.fail("version: %s answered /version %q, want %+v", m.name, body, want)
	}
}
