package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/detcd/detcd/server"
)

// printVersion prints --version as etcd does, first line "etcd Version:
// 3.7.3" (etcd's e2e framework and scripts read the version from that
// line), then detcd's own version.
func printVersion(w io.Writer) {
	gitSHA, detcdVersion := "Not provided (built without version control information)", "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		detcdVersion = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				gitSHA = s.Value
			}
		}
	}
	fmt.Fprintf(w, "etcd Version: %s\nGit SHA: %s\nGo Version: %s\nGo OS/Arch: %s/%s\ndetcd Version: %s\n",
		server.Version, gitSHA, runtime.Version(), runtime.GOOS, runtime.GOARCH, detcdVersion)
}
