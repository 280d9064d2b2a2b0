package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/detcd/detcd/server"
)

const snapshotUsage = `Usage:
  detcd snapshot restore FILE [flags]
  detcd snapshot status FILE [--write-out simple|json]

restore makes a new data directory from a snapshot, as 'etcdutl snapshot
restore' does for etcd. The file is etcd's database file: one 'etcdctl
snapshot save' took from detcd or from etcd, or the member/snap/db of a
stopped etcd member (it has no hash: give --skip-hash-check); a backup in
detcd's own earlier format is read too. The keys, their revisions, the
leases and the users and roles are kept; the cluster is a new one, made
of the members --initial-cluster names. Restore every member of the new
cluster from the same file with its own --name and
--initial-advertise-peer-urls, then start each with the same
--initial-cluster and --initial-cluster-token. A file whose hash or
format is wrong is refused and no data directory is made.

status checks a snapshot's hash and prints its HashKV, revision, number
of keys and size (etcdutl snapshot status prints a hash of the file's
buckets instead of the HashKV).

Flags of restore:
`

// snapshotCmd runs 'detcd snapshot ...'; it returns the exit status.
func snapshotCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "status" {
		return snapshotStatus(args[1:], stdout, stderr)
	}
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
	var opts server.RestoreOptions
	fs.StringVar(&cfg.Name, "name", cfg.Name, "Human-readable name for this member.")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "Path to the data directory to create (default \"${name}.etcd\"); it must not hold a member yet.")
	fs.StringVar(&cfg.InitialCluster, "initial-cluster", cfg.InitialCluster, "Initial cluster configuration for the restored cluster.")
	fs.StringVar(&cfg.InitialClusterToken, "initial-cluster-token", cfg.InitialClusterToken, "Initial cluster token for the restored cluster.")
	fs.StringVar(&advertise, "initial-advertise-peer-urls", strings.Join(cfg.InitialAdvertisePeerURLs, ","), "List of this member's peer URLs to advertise to the rest of the cluster.")
	fs.BoolVar(&opts.SkipHashCheck, "skip-hash-check", false, "Restore even if the file's SHA-256 does not match (a file without one).")
	fs.Int64Var(&opts.BumpRevision, "bump-revision", 0, "How much to increase the latest revision after restore (goes with --mark-compacted, as etcdutl's).")
	fs.BoolVar(&opts.MarkCompacted, "mark-compacted", false, "Mark the latest revision after --bump-revision as compacted, so that watches from before fail and clients list again (goes with --bump-revision, as etcdutl's).")
	file, rest := fileArg(args[1:])
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if file = oneFile(file, fs); file == "" {
		fmt.Fprintln(stderr, "detcd snapshot restore: want exactly one snapshot file")
		return 2
	}
	cfg.InitialAdvertisePeerURLs = splitURLs(advertise)
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	defaultInitialCluster(&cfg, set)
	if err := server.Restore(cfg, file, opts); err != nil {
		fmt.Fprintf(stderr, "detcd snapshot restore: %v\n", err)
		return 1
	}
	if cfg.DataDir == "" {
		cfg.DataDir = cfg.Name + ".etcd"
	}
	fmt.Fprintf(stderr, "restored snapshot %s into %s\n", file, cfg.DataDir)
	return 0
}

func snapshotStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("detcd snapshot status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, snapshotUsage) }
	format := fs.String("write-out", "simple", "Output format: simple or json.")
	file, rest := fileArg(args)
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if file = oneFile(file, fs); file == "" || (*format != "simple" && *format != "json") {
		fmt.Fprintln(stderr, "detcd snapshot status: want one snapshot file and --write-out simple or json")
		return 2
	}
	st, size, err := server.SnapshotStatus(file)
	if err != nil {
		fmt.Fprintf(stderr, "detcd snapshot status: %v\n", err)
		return 1
	}
	if *format == "json" {
		json.NewEncoder(stdout).Encode(map[string]any{"hash": st.Hash, "revision": st.Revision, "compactRevision": st.CompactRevision, "totalKey": st.Keys, "totalSize": size})
		return 0
	}
	fmt.Fprintf(stdout, "%x, %d, %d, %d B\n", st.Hash, st.Revision, st.Keys, size)
	return 0
}

// fileArg takes the file name when it comes before the flags.
func fileArg(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "", args
}

// oneFile is the one file named before or after the flags, or "".
func oneFile(file string, fs *flag.FlagSet) string {
	switch {
	case file == "" && fs.NArg() == 1:
		return fs.Arg(0)
	case fs.NArg() > 0:
		return ""
	}
	return file
}
