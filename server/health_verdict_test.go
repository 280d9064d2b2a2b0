package server

import (
	"errors"
	"net/http"
	"testing"
)

func TestHealthReason(t *testing.T) {
	readFails := func() error { return errors.New("timed out") }
	for _, c := range []struct {
		name                    string
		alarms                  []string
		excluded                map[string]bool
		serializable, hasLeader bool
		read                    func() error
		want                    string
		wantRead                bool
	}{
		{"healthy", nil, nil, false, true, nil, "", true},
		{"an alarm, before the read", []string{"NOSPACE", "CORRUPT"}, nil, false, true, nil, "ALARM NOSPACE", false},
		{"an excluded alarm", []string{"NOSPACE", "CORRUPT"}, map[string]bool{"NOSPACE": true}, false, true, nil, "ALARM CORRUPT", false},
		{"no leader", nil, nil, false, false, nil, "RAFT NO LEADER", false},
		{"no leader, serializable", nil, nil, true, false, nil, "", true},
		{"the read fails", nil, nil, false, true, readFails, "RANGE ERROR:timed out", true},
	} {
		read := false
		got := healthReason(c.alarms, c.excluded, c.serializable, c.hasLeader, func() error {
			read = true
			if c.read != nil {
				return c.read()
			}
			return nil
		})
		if got != c.want || read != c.wantRead {
			t.Errorf("%s: %q (read %v), want %q (read %v)", c.name, got, read, c.want, c.wantRead)
		}
	}
}

func TestChecksReport(t *testing.T) {
	ok, bad := checkResult{name: "a"}, checkResult{name: "b", err: errors.New("why")}
	for _, c := range []struct {
		name     string
		results  []checkResult
		verbose  bool
		wantCode int
		wantBody string
	}{
		{"ok", []checkResult{ok}, false, http.StatusOK, "ok\n"},
		{"ok, verbose", []checkResult{ok}, true, http.StatusOK, "[+]a ok\nok\n"},
		{"a failure shows every line", []checkResult{ok, bad}, false, http.StatusServiceUnavailable, "[+]a ok\n[-]b failed: why\n"},
		{"nothing run", nil, false, http.StatusOK, "ok\n"},
	} {
		code, body := checksReport(c.results, c.verbose)
		if code != c.wantCode || body != c.wantBody {
			t.Errorf("%s: %d %q, want %d %q", c.name, code, body, c.wantCode, c.wantBody)
		}
	}
}
