package sim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"

	"github.com/prometheus/common/expfmt"

	"github.com/detcd/detcd/server"
)

// Health probes: a monitor asks every member, once a second of its
// incarnation, etcd's HTTP endpoints, as a load balancer or Kubernetes
// does, in turn /health, /readyz, /livez, /health?serializable=true and
// /version; and /metrics 5 s after the member starts and every 30 s
// then, as Prometheus does, in protobuf and text in turn; all from a
// browser's origin. The server's
// client handler (server.Instruments.ClientHandler, with --cors)
// answers, run as a task in the world over the member's Frontend, so its
// reads wait in virtual time. A member that says it is healthy after a
// linearizable read must have applied everything committed anywhere when
// the probe was sent (checkHealthy); /version must name the cluster
// version the member applied (checkVersion); /metrics must show what the
// metrics' collectors hold (checkScrape);
// every answer carries the CORS header --cors asks for (checkCORS).

// healthProbeEveryUs is how often a member is probed.
const healthProbeEveryUs = 1_000_000

// healthProbePaths are the probes' requests, in turn; linearizable says
// which read a linearizable read.
var healthProbePaths = []struct {
	path         string
	linearizable bool
}{{"/health", true}, {"/readyz", true}, {"/livez", false}, {"/health?serializable=true", false}, {"/version", false}}

// metricsScrapeEveryUs is how often a member's /metrics is scraped,
// apart from the probes: a scrape and its parse cost what a hundred
// probes do.
const metricsScrapeEveryUs = 30_000_000

// metricsFirstScrapeUs is when a member's first scrape comes, after it
// starts: soon, as Prometheus scrapes a target it has just found.
const metricsFirstScrapeUs = 5_000_000

// probeOrigin is the browser origin the probes come from.
const probeOrigin = "http://sim-dashboard"

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
	h, inc := m.inst.ClientHandler(&m.flags, m.front), m.inc
	var probe func(n int)
	probe = func(n int) {
		m.w.after(healthProbeEveryUs, func() {
			if m.inc != inc || !m.up {
				return
			}
			m.probeHealth(h, n)
			m.probePeer(n)
			probe(n + 1)
		})
	}
	probe(0)
	var scrape func(n int, afterUs int64)
	scrape = func(n int, afterUs int64) {
		m.w.after(afterUs, func() {
			if m.inc != inc || !m.up {
				return
			}
			m.scrapeMetrics(h, scrapeFormats[n%len(scrapeFormats)])
			scrape(n+1, metricsScrapeEveryUs)
		})
	}
	scrape(0, metricsFirstScrapeUs)
}

// scrapeFormats are the exposition formats the scrapes ask for, in
// turn: delimited protobuf, cheaper to read, and text.
var scrapeFormats = []expfmt.Format{expfmt.FmtProtoDelim, expfmt.FmtText}

// scrapeMetrics scrapes the member's /metrics in format.
func (m *member) scrapeMetrics(h http.Handler, format expfmt.Format) {
	w, inc := m.w, m.inc
	req := probeRequest(metricsURL)
	req.Header.Set("Accept", string(format))
	w.spawn(func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if m.inc == inc && m.up {
			w.checks.checkCORS(m, metricsURL.Path, rec.Header())
			w.checks.checkScrape(m, rec)
		}
	})
}

// metricsURL is /metrics, parsed once.
var metricsURL = &url.URL{Path: "/metrics"}

// probeRequest is a GET of u from a browser at probeOrigin.
func probeRequest(u *url.URL) *http.Request {
	return &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{"Origin": {probeOrigin}}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
}

// probeHealth sends the member the nth probe.
func (m *member) probeHealth(h http.Handler, n int) {
	w, inc := m.w, m.inc
	i := n % len(healthProbePaths)
	p := healthProbePaths[i]
	req := probeRequest(healthProbeURLs[i])
	committed := w.maxCommit()
	w.spawn(func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		current := m.inc == inc && m.up
		if current {
			w.checks.checkCORS(m, p.path, rec.Header())
		}
		if p.path == "/version" {
			if current {
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

// checkScrape: a scrape of /metrics succeeds (every collector collects,
// no two series collide) and shows what the collectors hold right now.
func (c *checkers) checkScrape(m *member, rec *httptest.ResponseRecorder) {
	if rec.Code != http.StatusOK {
		c.fail("metrics: %s answered /metrics %d: %s", m.name, rec.Code, strings.TrimSpace(rec.Body.String()))
		return
	}
	got, err := server.ScrapeReadings(rec.Header(), rec.Body)
	if want := m.inst.Read(); err != nil || got != want {
		c.fail("metrics: %s's /metrics shows %+v (%v), its collectors hold %+v", m.name, got, err, want)
	}
}

// checkCORS: an answer to a browser's request carries etcd's CORS
// header for the origins --cors allows ("*": any).
func (c *checkers) checkCORS(m *member, path string, h http.Header) {
	want := ""
	switch {
	case slices.Contains(m.flags.CORS, "*"):
		want = "*"
	case slices.Contains(m.flags.CORS, probeOrigin):
		want = probeOrigin
	}
	if got := h.Get("Access-Control-Allow-Origin"); got != want {
		c.fail("http: %s answered %s from %s with Access-Control-Allow-Origin %q, want %q (--cors %v)", m.name, path, probeOrigin, got, want, m.flags.CORS)
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
