package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// failingRun is a cheap run that fails: its liveness bound is too short
// for the cluster to converge. Its world recorded a timeline.
func failingRun(t *testing.T) (*World, *Result) {
	t.Helper()
	o := short(7)
	o.Duration, o.Liveness = 4*time.Second, time.Microsecond
	w, err := New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.EnableTimeline()
	res := w.Run()
	if res.OK() {
		t.Fatalf("the run meant to fail passed: %s", o)
	}
	return w, res
}

// TestTimelineKeepsTraceHash: recording a timeline changes nothing in the
// run, and the injected faults are recorded either way; an explicit
// schedule is recorded as given.
func TestTimelineKeepsTraceHash(t *testing.T) {
	scheduled := short(11)
	scheduled.Schedule = []ScheduledFault{{AtUs: 2_000_000, Kind: FaultCrash, Member: 1, ForUs: 500_000}, {AtUs: 4_000_000, Kind: FaultPartition, Member: 0, ForUs: 1_000_000}}
	for name, o := range map[string]Options{"seed faults": short(7), "explicit schedule": scheduled} {
		t.Run(name, func(t *testing.T) {
			plain := run(t, o)
			w, err := New(o, nil)
			if err != nil {
				t.Fatal(err)
			}
			w.EnableTimeline()
			recorded := w.Run()
			if plain.TraceHash != recorded.TraceHash {
				t.Fatalf("trace hash %s without a timeline, %s with", plain.TraceHash, recorded.TraceHash)
			}
			if len(plain.Injected) == 0 || !slices.Equal(plain.Injected, recorded.Injected) {
				t.Fatalf("injected %v without a timeline, %v with", plain.Injected, recorded.Injected)
			}
			if o.Schedule != nil && !slices.Equal(recorded.Injected, o.Schedule) {
				t.Fatalf("injected %v, scheduled %v", recorded.Injected, o.Schedule)
			}
		})
	}
}

// pageData reads the data embedded in a timeline page.
func pageData(t *testing.T, page []byte) timelinePage {
	t.Helper()
	const open = `<script id="data" type="application/json">`
	_, rest, ok := bytes.Cut(page, []byte(open))
	data, _, ok2 := bytes.Cut(rest, []byte("</script>"))
	if !ok || !ok2 {
		t.Fatal("no data in the page")
	}
	var p timelinePage
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTimelinePage: the page is one file that fetches nothing, and holds
// every kind of row, in time order, with the failed check.
func TestTimelinePage(t *testing.T) {
	w, res := failingRun(t)
	var page bytes.Buffer
	if err := w.WriteTimelineHTML(&page); err != nil {
		t.Fatal(err)
	}
	for _, external := range []string{"http:", "https:", " src=", "<link", "@import"} {
		if bytes.Contains(page.Bytes(), []byte(external)) {
			t.Errorf("the page refers outside itself: %q", external)
		}
	}
	p := pageData(t, page.Bytes())
	if len(p.Members) != len(w.members) || p.Members[0] != "m1" || !slices.Equal(p.Failures, res.Failures) {
		t.Fatalf("members %v, failures %v", p.Members, p.Failures)
	}
	kinds := map[string]int{}
	for i, r := range p.Rows {
		kinds[r.Kind]++
		if i > 0 && r.AtUs < p.Rows[i-1].AtUs {
			t.Fatalf("row %d at %dus comes after one at %dus", i, r.AtUs, p.Rows[i-1].AtUs)
		}
		if r.Kind == rowCheck && r.Text != res.Failures[0] {
			t.Errorf("check row %q, failure %q", r.Text, res.Failures[0])
		}
	}
	for _, k := range []string{rowOp, rowMsg, rowHeartbeat, rowFault, rowLeader, rowPhase, rowCheck} {
		if kinds[k] == 0 {
			t.Errorf("no %s rows (rows by kind: %v)", k, kinds)
		}
	}
}

// chromium finds a headless browser; without one the browser test skips,
// except in CI, which must have installed it (scripts/install-chromium).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; CI must install it: scripts/install-chromium (make test does)")
	}
	t.Skip("chromium is not installed: run scripts/install-chromium (make test does) to test the pages in a browser")
	return ""
}

// dumpDOMs loads pages in headless chromium, side by side, and returns
// their DOMs after their scripts ran.
func dumpDOMs(t *testing.T, browser string, paths ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	doms, errs := make([]string, len(paths)), make([]error, len(paths))
	var wg sync.WaitGroup
	for i, path := range paths {
		cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
			"--user-data-dir="+t.TempDir(), "--dump-dom", "file://"+path)
		wg.Go(func() {
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				errs[i] = fmt.Errorf("chromium %s: %w\n%s", path, err, stderr.String())
			}
			doms[i] = string(out)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return doms
}

// TestPagesInBrowser loads a failed run's timeline and history pages in a
// real headless browser: their scripts build the member columns, the
// rows and the failed check, and porcupine's page draws the operations.
func TestPagesInBrowser(t *testing.T) {
	browser := chromium(t)
	w, res := failingRun(t)
	dir := t.TempDir()
	paths, err := w.WriteReport(dir, "run")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(paths.Timeline) != dir || filepath.Dir(paths.History) != dir {
		t.Fatalf("pages %+v not in %s", paths, dir)
	}
	doms := dumpDOMs(t, browser, paths.Timeline, paths.History)
	timeline, history := doms[0], doms[1]
	failure := html.EscapeString(res.Failures[0])
	for _, want := range []string{
		`<th class="member-col">m1</th>`, `<th class="member-col">m2</th>`, `<th class="member-col">m3</th>`,
		`<th class="cluster-col">cluster</th>`,
		`<li><a href="#first-check">` + failure + `</a></li>`,
		`<tr class="row check" id="first-check">`,
		`<td class="check">` + failure,
		`<td class="leader">m`, `<td class="op">c`, `<td class="fault">`,
	} {
		if !strings.Contains(timeline, want) {
			t.Errorf("the timeline's DOM lacks %s", want)
		}
	}
	for _, want := range []string{`class="history-text"`, ">failed checks</text>", ">faults</text>", ">leaders</text>"} {
		if !strings.Contains(history, want) {
			t.Errorf("the history's DOM lacks %s", want)
		}
	}
}

// TestTimelineMemberState: rows carry which members are down or paused,
// for the page to shade: m2 crashes for half a second, then m3 pauses
// for two.
func TestTimelineMemberState(t *testing.T) {
	o := short(11)
	o.Duration = 8 * time.Second
	o.Schedule = []ScheduledFault{{AtUs: 3_000_000, Kind: FaultCrash, Member: 1, ForUs: 500_000}, {AtUs: 4_500_000, Kind: FaultPause, Member: 2, ForUs: 2_000_000}}
	w, err := New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.EnableTimeline()
	w.Run()
	for _, tc := range []struct {
		name               string
		fromUs, toUs       int64
		wantDown, wantPaus uint32
	}{
		{"before", 2_000_000, 3_000_000, 0, 0},
		{"m2 down", 3_000_001, 3_500_000, 1 << 1, 0},
		{"m3 paused", 4_500_001, 6_500_000, 0, 1 << 2},
		{"after", 6_500_001, 8_000_000, 0, 0},
	} {
		rows := 0
		for _, r := range w.timeline.rows {
			if r.AtUs < tc.fromUs || r.AtUs >= tc.toUs {
				continue
			}
			rows++
			if r.Down != tc.wantDown || r.Paused != tc.wantPaus {
				t.Errorf("%s: row %q at %dus: down %b paused %b, want %b and %b", tc.name, r.Text, r.AtUs, r.Down, r.Paused, tc.wantDown, tc.wantPaus)
				break
			}
		}
		if rows == 0 {
			t.Errorf("%s: no rows in [%d, %d)us", tc.name, tc.fromUs, tc.toUs)
		}
	}
}
