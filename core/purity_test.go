package core

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// forbiddenImports are packages core's own code must not import: they
// bring goroutines, locks, the wall clock, the file system, the network or
// global randomness. (core's dependencies may import them; raft and the
// etcd API types do.)
var forbiddenImports = map[string]string{
	"os": "file system", "os/exec": "processes", "os/signal": "signals", "syscall": "system calls",
	"net": "network", "net/http": "network", "net/url": "network parsing belongs to drivers",
	"sync": "locks", "sync/atomic": "shared memory",
	"math/rand": "global randomness", "math/rand/v2": "global randomness", "crypto/rand": "global randomness",
	"time": "the wall clock", "runtime": "the scheduler", "log": "timestamps on stderr",
	"context": "cancellation belongs to drivers",
}

// mapOrderOK is the comment that marks a range over a map whose order
// cannot reach an output; the reason follows it.
const mapOrderOK = "core:maporder-ok"

// TestPurity keeps core pure and deterministic: no forbidden imports, no
// goroutines, channels or select, and no range over a map unless marked as
// harmless, in every non-test file under core/.
func TestPurity(t *testing.T) {
	var dirs []string
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && !strings.Contains(path, "testdata") {
			dirs = append(dirs, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	imp := exportImporter(t)
	for _, dir := range dirs {
		checkDir(t, dir, imp)
	}
}

// exportImporter reads dependencies' types from the compiler's export
// data, which go list builds (and caches), instead of type-checking every
// dependency from source.
func exportImporter(t *testing.T) types.Importer {
	out, err := exec.Command("go", "list", "-export", "-deps", "-f", "{{.ImportPath}}\t{{.Export}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list -export: %v", err)
	}
	exports := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if path, file, ok := strings.Cut(line, "\t"); ok && file != "" {
			exports[path] = file
		}
	}
	return importer.ForCompiler(token.NewFileSet(), "gc", func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(file)
	})
}

func checkDir(t *testing.T, dir string, imp types.Importer) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool {
		ok, err := build.Default.MatchFile(dir, fi.Name())
		return err == nil && ok && !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range pkgs {
		var files []*ast.File
		for _, f := range pkg.Files {
			files = append(files, f)
			for _, is := range f.Imports {
				p := strings.Trim(is.Path.Value, `"`)
				if why, bad := forbiddenImports[p]; bad {
					t.Errorf("%s imports %s (%s)", fset.Position(is.Pos()), p, why)
				}
			}
		}
		info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}}
		conf := types.Config{Importer: imp}
		if _, err := conf.Check(dir, fset, files, info); err != nil {
			t.Errorf("type-check %s: %v", dir, err)
		}
		for _, f := range files {
			checkFile(t, fset, f, info)
		}
	}
}

func checkFile(t *testing.T, fset *token.FileSet, f *ast.File, info *types.Info) {
	marked := map[int]bool{}
	for _, cg := range f.Comments {
		for _, c := range cg.List {
			if strings.Contains(c.Text, mapOrderOK) {
				marked[fset.Position(c.Pos()).Line] = true
			}
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		pos := func() token.Position { return fset.Position(n.Pos()) }
		switch x := n.(type) {
		case *ast.GoStmt:
			t.Errorf("%s: go statement", pos())
		case *ast.ChanType:
			t.Errorf("%s: channel type", pos())
		case *ast.SelectStmt:
			t.Errorf("%s: select statement", pos())
		case *ast.SendStmt:
			t.Errorf("%s: channel send", pos())
		case *ast.UnaryExpr:
			if x.Op == token.ARROW {
				t.Errorf("%s: channel receive", pos())
			}
		case *ast.RangeStmt:
			tv, ok := info.Types[x.X]
			if !ok {
				t.Errorf("%s: cannot tell the type of a range expression; type checking failed?", pos())
				return true
			}
			if _, isMap := tv.Type.Underlying().(*types.Map); isMap && !marked[pos().Line] {
				t.Errorf("%s: range over a map: its order is random; sort the keys, or mark the line with //%s and say why the order cannot reach an output", pos(), mapOrderOK)
			}
		}
		return true
	})
}
