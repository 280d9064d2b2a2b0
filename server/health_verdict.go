package server

import (
	"fmt"
	"net/http"
	"strings"
)

// The health endpoints' verdicts, decided without I/O or goroutines (the
// handlers in health.go run the checks and write the answers), so that
// any runtime can run them.

// Health check kinds and their results, as etcd names them in the
// etcd_server_healthcheck* metrics.
const (
	checkLivez    = "livez"
	checkReadyz   = "readyz"
	healthSuccess = "success"
	healthError   = "error"
)

// healthReason is what etcd's /health reports, "" when healthy: an alarm
// not excluded, then no leader (unless serializable), then a failed read.
// read runs only when nothing before failed.
func healthReason(alarms []string, excluded map[string]bool, serializable, hasLeader bool, read func() error) string {
	for _, a := range alarms {
		if !excluded[a] {
			return "ALARM " + a
		}
	}
	if !serializable && !hasLeader {
		return "RAFT NO LEADER"
	}
	if err := read(); err != nil {
		return "RANGE ERROR:" + err.Error()
	}
	return ""
}

// checkResult is how one named check went: err nil if it passed.
type checkResult struct {
	name string
	err  error
}

// result is the check's result as etcd's metrics label it.
func (r checkResult) result() string {
	if r.err != nil {
		return healthError
	}
	return healthSuccess
}

// checksReport is etcd's answer to /livez, /readyz or one of their
// checks: "ok", or 503 with the failures, one "[+]name ok" or
// "[-]name failed: why" line a check, the lines shown on success only
// when verbose.
func checksReport(results []checkResult, verbose bool) (code int, body string) {
	var out strings.Builder
	failed := false
	for _, r := range results {
		if r.err != nil {
			fmt.Fprintf(&out, "[-]%s failed: %v\n", r.name, r.err)
			failed = true
		} else {
			fmt.Fprintf(&out, "[+]%s ok\n", r.name)
		}
	}
	if failed {
		return http.StatusServiceUnavailable, out.String()
	}
	if verbose {
		return http.StatusOK, out.String() + "ok\n"
	}
	return http.StatusOK, "ok\n"
}
