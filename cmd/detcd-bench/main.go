// Command detcd-bench is a small load tool for detcd or etcd, built on the
// official Go client, and the driver of the side-by-side comparison that
// `make bench-compare` runs.
//
// Every load run is bounded by a request count and a time limit, prints one
// summary line (or one JSON object with --json), and reports its own CPU
// time per request; given --server-pid it also reports the server's CPU
// time per request, sampled from /proc right before and after the load
// phase. Performance numbers are reported, never asserted.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usageText = `Usage: detcd-bench COMMAND [flags]

Load commands (against any etcd v3 endpoint: detcd or etcd):
  put      puts of --key-size/--val-size keys over a key space, sequential or random
  range    single-key gets, linearizable or serializable, over pre-populated keys
  fill     writes --keys distinct keys as fast as possible (for memory tests)
  watch    watchers over 1 and 100 watch streams, a writer putting on their
           key: event delivery latency and throughput, missed/duplicate events
  lease    keep-alive throughput over pipelined LeaseKeepAlive streams, then
           mass expiry of short leases with their keys while a writer puts
  compact  a fill of 1M revisions over 100k keys, then puts at 1000/s while
           they are compacted (physically) and the store defragmented:
           the puts' latency in each phase
  latency  one client, one request at a time: a bare gRPC echo, gets and a
           put on one connection, and one fsync, for what a request adds
  wait     polls until the endpoint serves a linearizable get; prints the time

Driver:
  compare  starts detcd (and etcd) on fresh data dirs on 127.0.0.1 and runs
           the load commands against each in alternation, single member and
           on a 3-member cluster, then a fill, memory and restart test;
           prints a table of medians

Run 'detcd-bench COMMAND --help' for a command's flags.

Each load run stops at whichever comes first of its request count (--total,
or --keys for fill) and its time limit (--duration). It prints one line:
  requests, seconds, requests/s, p50/p90/p99 latency, errors, the tool's own
  CPU per request (getrusage) and, with --server-pid, the server's CPU per
  request (/proc/PID/stat utime+stime; summed over PID,PID,... for the
  members of a cluster).
watch prints one line per stream shape and lease one per phase, with their
own counts and rates (see their --help), in the same way.
The tool sets GOGC=400 for itself unless GOGC is set (less of the shared
CPU spent on the client's garbage). --cpuprofile FILE profiles the tool.
Exit status: 0, or 3 if some requests failed (the summary still prints;
for watch also a missed, duplicate or out-of-order event, for lease a key
left after the expiry timeout), or 1/2 on a setup or usage error.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usageText)
		return 0
	case "put", "range", "fill":
		return runLoadCommand(cmd, rest, stdout, stderr)
	case "watch":
		return runWatch(rest, stdout, stderr)
	case "lease":
		return runLease(rest, stdout, stderr)
	case "compact":
		return runCompact(rest, stdout, stderr)
	case "latency":
		return runLatency(rest, stdout, stderr)
	case "wait":
		return runWait(rest, stdout, stderr)
	case "compare":
		return runCompare(rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "detcd-bench: unknown command %q\n\n%s", cmd, usageText)
		return 2
	}
}

// parseFlags gives a command its usage text (help between the usage line
// and the flags) and parses its flags. ok false means the command ends
// now with code: 0 after --help, 2 after a bad flag or stray arguments.
func parseFlags(fs *flag.FlagSet, cmd, help string, args []string, stderr io.Writer) (code int, ok bool) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: detcd-bench %s [flags]\n\n%s\n\nFlags:\n", cmd, help)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "detcd-bench %s: unexpected arguments %q\n", cmd, fs.Args())
		return 2, false
	}
	return 0, true
}
