package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/detcd/detcd/grpcsvc"
)

// Health check kinds and their results, as etcd names them in the
// etcd_server_healthcheck* metrics.
const (
	checkLivez    = "livez"
	checkReadyz   = "readyz"
	healthSuccess = "success"
	healthError   = "error"
)

// healthCheck is one of etcd's named /livez or /readyz checks.
type healthCheck struct {
	name  string
	check func(ctx context.Context) error
}

// readCheck is etcd's serializable_read or linearizable_read check.
func (s *Server) readCheck(serializable bool) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.requestTimeout())
		defer cancel()
		return grpcsvc.CheckRead(ctx, s, serializable)
	}
}

// livezChecks and readyzChecks are etcd's checks, by etcd's names, in the
// order the verbose output lists them (etcd's own order is a map's).
func (s *Server) livezChecks() []healthCheck {
	return []healthCheck{{"serializable_read", s.readCheck(true)}}
}

func (s *Server) readyzChecks() []healthCheck {
	return []healthCheck{
		{"data_corruption", func(context.Context) error {
			if s.status.corrupt.Load() {
				return fmt.Errorf("alarm activated: CORRUPT")
			}
			return nil
		}},
		{"linearizable_read", s.readCheck(false)},
		{"non_learner", func(context.Context) error {
			if s.status.IsLearner() {
				return fmt.Errorf("not supported for learner")
			}
			return nil
		}},
		{"serializable_read", s.readCheck(true)},
	}
}

// addHealthRoutes adds /health, /livez and /readyz, each check of the
// last two under its own path as well (/readyz/linearizable_read).
func (s *Server) addHealthRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/health", s.handleHealth)
	for kind, checks := range map[string][]healthCheck{checkLivez: s.livezChecks(), checkReadyz: s.readyzChecks()} {
		mux.Handle("/"+kind, s.checksHandler(kind, checks, true))
		for _, c := range checks {
			mux.Handle("/"+kind+"/"+c.name, s.checksHandler(kind, []healthCheck{c}, false))
		}
	}
}

// healthReason is what etcd's /health reports, "" when healthy: an alarm
// not excluded, then no leader (unless serializable), then a failed read.
func (s *Server) healthReason(ctx context.Context, excluded map[string]bool, serializable bool) string {
	for _, a := range s.status.activeAlarms() {
		if !excluded[a] {
			return "ALARM " + a
		}
	}
	if !serializable && s.status.Leader() == 0 {
		return "RAFT NO LEADER"
	}
	if err := s.readCheck(serializable)(ctx); err != nil {
		return "RANGE ERROR:" + err.Error()
	}
	return ""
}

// querySet is the non-empty values of a repeated query parameter.
func querySet(r *http.Request, name string) map[string]bool {
	set := map[string]bool{}
	for _, v := range r.URL.Query()[name] {
		if v != "" {
			set[v] = true
		}
	}
	return set
}

// onlyGet answers etcd's 405 to anything but GET; false if it did.
func onlyGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet {
		return true
	}
	w.Header().Set("Allow", http.MethodGet)
	http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	return false
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if !onlyGet(w, r) {
		return
	}
	reason := s.healthReason(r.Context(), querySet(r, "exclude"), r.URL.Query().Get("serializable") == "true")
	h := struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}{Health: "true", Reason: reason}
	if reason != "" {
		h.Health = "false"
		s.metrics.healthFailures.Inc()
	} else {
		s.metrics.healthSuccess.Inc()
	}
	b, _ := json.Marshal(h)
	if reason != "" {
		http.Error(w, string(b), http.StatusServiceUnavailable)
		return
	}
	w.Write(b)
}

// checksHandler serves /livez, /readyz or one of their checks as etcd
// does: "ok" or 503 with the failures, one "[+]name ok" or
// "[-]name failed: why" line a check, the lines shown on success only with
// ?verbose. On the root path ?exclude= leaves checks out.
func (s *Server) checksHandler(kind string, checks []healthCheck, root bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !onlyGet(w, r) {
			return
		}
		run := checks
		if root {
			excluded := querySet(r, "exclude")
			run = slices.DeleteFunc(slices.Clone(checks), func(c healthCheck) bool { return excluded[c.name] })
		}
		var out strings.Builder
		failed := false
		for _, c := range run {
			result := healthSuccess
			if err := c.check(r.Context()); err != nil {
				fmt.Fprintf(&out, "[-]%s failed: %v\n", c.name, err)
				failed, result = true, healthError
			} else {
				fmt.Fprintf(&out, "[+]%s ok\n", c.name)
			}
			s.metrics.recordCheck(kind, c.name, result)
		}
		if failed {
			http.Error(w, out.String(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if _, ok := r.URL.Query()["verbose"]; ok {
			fmt.Fprint(w, out.String())
		}
		fmt.Fprint(w, "ok\n")
	})
}

// healthMetrics are etcd's per-check metrics.
type healthMetrics struct {
	gauge   *prometheus.GaugeVec
	counter *prometheus.CounterVec
}

func newHealthMetrics() healthMetrics {
	return healthMetrics{
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "etcd_server_healthcheck", Help: "The result of each kind of healthcheck."}, []string{"type", "name"}),
		counter: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "etcd_server_healthchecks_total", Help: "The total number of each kind of healthcheck."},
			[]string{"type", "name", "status"}),
	}
}

func (m *metrics) recordCheck(kind, name, result string) {
	v := 0.0
	if result == healthSuccess {
		v = 1
	}
	m.health.gauge.WithLabelValues(kind, name).Set(v)
	m.health.counter.WithLabelValues(kind, name, result).Inc()
}
