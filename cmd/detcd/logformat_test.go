package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"regexp"
	"testing"
	"time"
)

// TestLogFormat: records have the keys etcd's e2e test of its JSON logs
// checks, in etcd's formats: level, ts (etcd's layout), caller, msg.
func TestLogFormat(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&b, etcdLogOptions(slog.LevelDebug)))
	log.Warn("ready to serve client requests", "address", "127.0.0.1:2379")
	var rec struct {
		Level, Ts, Caller, Msg, Address string
	}
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil {
		t.Fatalf("%v: %s", err, b.String())
	}
	if _, err := time.Parse("2006-01-02T15:04:05.999999Z0700", rec.Ts); err != nil {
		t.Errorf("ts %q: %v", rec.Ts, err)
	}
	if !regexp.MustCompile(`^detcd/logformat_test\.go:\d+$`).MatchString(rec.Caller) {
		t.Errorf("caller %q, want detcd/logformat_test.go:LINE", rec.Caller)
	}
	if rec.Level != "warn" || rec.Msg != "ready to serve client requests" || rec.Address != "127.0.0.1:2379" {
		t.Errorf("record %+v", rec)
	}
}
