package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/detcd/detcd/server"
)

const snapshotUsage = `Usage: detcd snapshot restore FILE [flags]

Restores a snapshot taken with 'etcdctl snapshot save' from detcd into a
new data directory, as 'etcdutl snapshot restore' does for etcd: the keys,
their revisions and the leases are kept; the cluster is a new one, made of
the members --initial-cluster names. Restore every member of the new
cluster from the same file with its own --name and
--initial-advertise-peer-urls, then start each with the same
--initial-cluster and --initial-cluster-token.

Flags:
`

// snapshotCmd runs 'detcd snapshot ...'; it returns the exit status.
func snapshotCmd(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("detcd snapshot restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, snapshotUsage)
		fs.PrintDefaults()
	}
	if len(args) == 0 || args[0] != "restore" {
		fs.Usage()
		return 2
	}
	cfg := server.DefaultConfig()
	var advertise string
	var skipHash bool
	fs.StringVar(&cfg.Name, "name", cfg.Name, "Human-readable name for this member.")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "Path to the data directory to create (default \"${name}.etcd\"); it must not hold a member yet.")
	fs.StringVar(&cfg.InitialCluster, "initial-cluster", cfg.InitialCluster, "Initial cluster configuration for the restored cluster.")
	fs.StringVar(&cfg.InitialClusterToken, "initial-cluster-token", cfg.InitialClusterToken, "Initial cluster token for the restored cluster.")
	fs.StringVar(&advertise, "initial-advertise-peer-urls", strings.Join(cfg.InitialAdvertisePeerURLs, ","), "List of this member's peer URLs to advertise to the rest of the cluster.")
	fs.BoolVar(&skipHash, "skip-hash-check", false, "Restore even if the file's SHA-256 does not match (a file without one).")
	file, rest := "", args[1:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		file, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if file == "" && fs.NArg() == 1 {
		file = fs.Arg(0)
	} else if fs.NArg() > 0 || file == "" {
		fmt.Fprintln(stderr, "detcd snapshot restore: want exactly one snapshot file")
		return 2
	}
	cfg.InitialAdvertisePeerURLs = splitURLs(advertise)
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	defaultInitialCluster(&cfg, set)
	if err := server.Restore(cfg, file, skipHash); err != nil {
		fmt.Fprintf(stderr, "detcd snapshot restore: %v\n", err)
		return 1
	}
	if cfg.DataDir == "" {
		cfg.DataDir = cfg.Name + ".etcd"
	}
	fmt.Fprintf(stderr, "restored snapshot %s into %s\n", file, cfg.DataDir)
	return 0
}
