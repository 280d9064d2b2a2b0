package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/detcd/detcd/grpcsvc"
)

// healthChecks serve etcd's /health, /livez and /readyz: they own the
// named checks, run them against the member and count them; what the
// answers say is decided in health_verdict.go.
type healthChecks struct {
	backend grpcsvc.Backend // the reads checked
	status  *memberStatus
	timeout time.Duration // a check's read's, etcd's request timeout; 0: none
	metrics *healthMetrics
}

// healthCheck is one of etcd's named /livez or /readyz checks.
type healthCheck struct {
	name  string
	check func(ctx context.Context) error
}

// readCheck is etcd's serializable_read or linearizable_read check.
func (h *healthChecks) readCheck(serializable bool) func(context.Context) error {
	return func(ctx context.Context) error {
		if h.timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, h.timeout)
			defer cancel()
		}
		return grpcsvc.CheckRead(ctx, h.backend, serializable)
	}
}

// livezChecks and readyzChecks are etcd's checks, by etcd's names, in the
// order the verbose output lists them (etcd's own order is a map's).
func (h *healthChecks) livezChecks() []healthCheck {
	return []healthCheck{{"serializable_read", h.readCheck(true)}}
}

func (h *healthChecks) readyzChecks() []healthCheck {
	return []healthCheck{
		{"data_corruption", func(context.Context) error {
			if h.status.corrupt.Load() {
				return fmt.Errorf("alarm activated: CORRUPT")
			}
			return nil
		}},
		{"linearizable_read", h.readCheck(false)},
		{"non_learner", func(context.Context) error {
			if h.status.IsLearner() {
				return fmt.Errorf("not supported for learner")
			}
			return nil
		}},
		{"serializable_read", h.readCheck(true)},
	}
}

// addRoutes adds /health, /livez and /readyz, each check of the last two
// under its own path as well (/readyz/linearizable_read).
func (h *healthChecks) addRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/health", h.handleHealth)
	for kind, checks := range map[string][]healthCheck{checkLivez: h.livezChecks(), checkReadyz: h.readyzChecks()} {
		mux.Handle("/"+kind, h.checksHandler(kind, checks, true))
		for _, c := range checks {
			mux.Handle("/"+kind+"/"+c.name, h.checksHandler(kind, []healthCheck{c}, false))
		}
	}
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
	return allowMethod(w, r, http.MethodGet)
}

func (h *healthChecks) handleHealth(w http.ResponseWriter, r *http.Request) {
	if !onlyGet(w, r) {
		return
	}
	serializable := r.URL.Query().Get("serializable") == "true"
	reason := healthReason(h.status.activeAlarms(), querySet(r, "exclude"), serializable, h.status.Leader() != 0,
		func() error { return h.readCheck(serializable)(r.Context()) })
	body := struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}{Health: "true", Reason: reason}
	if reason != "" {
		body.Health = "false"
		h.metrics.failures.Inc()
	} else {
		h.metrics.success.Inc()
	}
	b, _ := json.Marshal(body)
	if reason != "" {
		http.Error(w, string(b), http.StatusServiceUnavailable)
		return
	}
	w.Write(b)
}

// checksHandler serves /livez, /readyz or one of their checks (see
// checksReport). On the root path ?exclude= leaves checks out.
func (h *healthChecks) checksHandler(kind string, checks []healthCheck, root bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !onlyGet(w, r) {
			return
		}
		run := checks
		if root {
			excluded := querySet(r, "exclude")
			run = slices.DeleteFunc(slices.Clone(checks), func(c healthCheck) bool { return excluded[c.name] })
		}
		var results []checkResult
		for _, c := range run {
			res := checkResult{name: c.name, err: c.check(r.Context())}
			h.metrics.record(kind, c.name, res.result())
			results = append(results, res)
		}
		_, verbose := r.URL.Query()["verbose"]
		code, body := checksReport(results, verbose)
		if code != http.StatusOK {
			http.Error(w, body, code)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		io.WriteString(w, body)
	})
}
