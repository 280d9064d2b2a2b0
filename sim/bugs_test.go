//go:build detcdbugs

package sim

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/detcd/detcd/core"
)

// plantedBugSeedsMax bounds how many seeds the simulator may need to catch
// a planted bug.
const plantedBugSeedsMax = 40

// TestPlantedBugs proves the checkers bite: each of these planted bugs
// must make some run fail within a bounded number of seeds. make mutants
// runs every planted bug, for minutes each.
func TestPlantedBugs(t *testing.T) {
	mixes := map[string]string{
		core.BugAckBeforeFsync:         "powerloss,crash,torn,slowdisk",
		core.BugStaleRead:              "partition,oneway",
		core.BugCompareGreaterOrEqual:  "all",
		core.BugMVCCRangeLimitOffByOne: "all",
		core.BugMVCCCompactKeepsTooFew: "all",
		core.BugAuthPrevKVUnchecked:    "all",
		core.BugAuthTxnNestedUnchecked: "all",
		core.BugLockSkipsWait:          "all",
	}
	// authOn are the bugs only users of limited permissions meet.
	authOn := map[string]bool{core.BugAuthPrevKVUnchecked: true, core.BugAuthTxnNestedUnchecked: true}
	for _, bug := range []string{core.BugAckBeforeFsync, core.BugStaleRead, core.BugCompareGreaterOrEqual, core.BugMVCCRangeLimitOffByOne, core.BugMVCCCompactKeepsTooFew,
		core.BugAuthPrevKVUnchecked, core.BugAuthTxnNestedUnchecked, core.BugLockSkipsWait} {
		t.Run(bug, func(t *testing.T) {
			faults, err := ParseFaults(mixes[bug])
			if err != nil {
				t.Fatal(err)
			}
			for seed := uint64(1); seed <= plantedBugSeedsMax; seed++ {
				o := DefaultOptions()
				o.Seed, o.Duration, o.Faults, o.PlantedBug = seed, 20*time.Second, faults, bug
				if authOn[bug] {
					o.AuthOn = "on"
				}
				if res := run(t, o); !res.OK() {
					t.Logf("caught at seed %d: %s", seed, res.Failures[0])
					return
				}
			}
			t.Fatalf("%d seeds did not catch planted bug %s", plantedBugSeedsMax, bug)
		})
	}
}

// TestSnapshotLoadOnLoopLosesQuorum: with the old snapshot install, the
// member that must catch up answers no heartbeat while it loads, and the
// leader, which needs it for its quorum, steps down: the quorum check
// catches it (the world of TestSnapshotKeepsQuorum).
func TestSnapshotLoadOnLoopLosesQuorum(t *testing.T) {
	res := run(t, snapshotScenario(core.BugSnapshotLoadOnLoop))
	if !slices.ContainsFunc(res.Failures, func(f string) bool { return strings.HasPrefix(f, "quorum lost during a snapshot transfer") }) {
		t.Fatalf("failures %v, want the quorum check's\n  replay: detcd-sim run %s", res.Failures, res.Options)
	}
}

// plantedGuard is how code checks a planted bug: n.bug(BugX) in core,
// x.Bug == planted.X in its subpackages, c.bug(core.BugX) in corrupt,
// bug(cfg, core.BugX) in driver.
var plantedGuard = regexp.MustCompile(`(?:\w\.(?:bug|planted)\((?:core\.)?|bug\(cfg, core\.)(Bug\w+)\)|\.(?:Bug|bug) == planted\.(\w+)`)

// TestPlantedBugsGuarded is make test's cheap check of the list make
// mutants runs: every planted bug has a distinct name, and code outside
// the lists checks it.
func TestPlantedBugsGuarded(t *testing.T) {
	sub := stringConsts(t, "../core/internal/planted/planted.go", nil)
	names := stringConsts(t, "../core/bugs.go", sub)
	for k, v := range sub {
		names["planted."+k] = v
	}
	guarded := map[string]bool{}
	err := walkGo([]string{"../core", "../corrupt", "../driver", "../grpcsvc"}, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		for _, m := range plantedGuard.FindAllStringSubmatch(string(b), -1) {
			if m[1] != "" {
				guarded[names[m[1]]] = true
			} else {
				guarded[names["planted."+m[2]]] = true
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(core.PlantedBugs) < 20 {
		t.Errorf("%d planted bugs; make mutants promises at least 20", len(core.PlantedBugs))
	}
	for i, bug := range core.PlantedBugs {
		if slices.Index(core.PlantedBugs, bug) != i {
			t.Errorf("planted bug %s listed twice", bug)
		}
		if !guarded[bug] {
			t.Errorf("planted bug %s is checked nowhere in core, corrupt, driver or grpcsvc", bug)
		}
	}
}

// walkGo walks each of dirs.
func walkGo(dirs []string, fn fs.WalkDirFunc) error {
	for _, d := range dirs {
		if err := filepath.WalkDir(d, fn); err != nil {
			return err
		}
	}
	return nil
}

// stringConsts returns a file's string constants by name; a constant
// defined as another package's (planted.X) takes its value from ext.
func stringConsts(t *testing.T, file string, ext map[string]string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				switch v := vs.Values[i].(type) {
				case *ast.BasicLit:
					out[n.Name], _ = strconv.Unquote(v.Value)
				case *ast.SelectorExpr:
					out[n.Name] = ext[v.Sel.Name]
				}
			}
		}
	}
	return out
}
