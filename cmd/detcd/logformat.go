package main

import (
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
)

// etcdTimeLayout is etcd's log timestamp: microseconds and the zone.
const etcdTimeLayout = "2006-01-02T15:04:05.000000Z0700"

// etcdLogOptions make slog's JSON records read as etcd's (zap's): "level"
// in lower case, "ts" in etcd's layout, "caller" as dir/file.go:line, and
// "msg". etcd's tooling and its e2e tests read these keys.
func etcdLogOptions(level slog.Leveler) *slog.HandlerOptions {
	return &slog.HandlerOptions{Level: level, AddSource: true, ReplaceAttr: etcdAttr}
}

func etcdAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		return slog.String("ts", a.Value.Time().Format(etcdTimeLayout))
	case slog.LevelKey:
		return slog.String(slog.LevelKey, strings.ToLower(a.Value.String()))
	case slog.SourceKey:
		if src, ok := a.Value.Any().(*slog.Source); ok {
			return slog.String("caller", filepath.Join(filepath.Base(filepath.Dir(src.File)), filepath.Base(src.File))+":"+strconv.Itoa(src.Line))
		}
	}
	return a
}
