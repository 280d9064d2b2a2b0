package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/anishathalye/porcupine"
)

// timelinePage is the data the timeline page renders.
type timelinePage struct {
	Title    string        `json:"title"`
	Replay   string        `json:"replay"`
	Settings string        `json:"settings"`
	Failures []string      `json:"failures"`
	Members  []string      `json:"members"`
	Rows     []TimelineRow `json:"rows"`
}

// WriteTimelineHTML writes the run's timeline as one self-contained HTML
// page (inline style and script, nothing fetched): members across, time
// down, with the client operations, messages, faults, leader changes and
// failed checks. The world must have had EnableTimeline before Run.
func (w *World) WriteTimelineHTML(out io.Writer) error {
	if w.timeline == nil {
		return fmt.Errorf("sim: no timeline recorded (EnableTimeline before Run)")
	}
	p := timelinePage{
		Title:    fmt.Sprintf("detcd-sim seed %d", w.opts.Seed),
		Replay:   "detcd-sim run " + w.opts.String(),
		Settings: w.settings.String(),
		Failures: append([]string{}, w.checks.failures...),
		Rows:     w.timelineRows(),
	}
	for _, m := range w.members {
		p.Members = append(p.Members, m.name)
	}
	data, err := json.Marshal(p) // escapes <, > and &: safe inside <script>
	if err != nil {
		return err
	}
	page := strings.Replace(timelineHTML, "/*DATA*/", string(data), 1)
	_, err = io.WriteString(out, page)
	return err
}

// WriteHistoryHTML writes porcupine's visualization of the client history:
// each key group's operations and its longest linearizations, with the
// faults and leader changes as annotations.
func (w *World) WriteHistoryHTML(out io.Writer) error {
	var info porcupine.LinearizationInfo
	if w.checks.linInfo != nil {
		info = *w.checks.linInfo // a copy: the annotations go on this page only
	} else {
		// The run ended before its checks (a member panicked): check now.
		_, info = porcupine.CheckOperationsVerbose(etcdModel(), w.checks.porcupineOps(), checkTimeout)
	}
	if w.timeline != nil {
		info.AddAnnotations(w.annotations())
	}
	return porcupine.Visualize(etcdModel(), info, out)
}

// annotations are the timeline's faults, leader changes and failed checks,
// for porcupine's page.
func (w *World) annotations() []porcupine.Annotation {
	var out []porcupine.Annotation
	for _, r := range w.timeline.rows {
		a := porcupine.Annotation{Start: r.AtUs, End: r.AtUs, Description: r.Text, Details: r.Detail}
		switch r.Kind {
		case rowFault:
			a.Tag, a.End, a.BackgroundColor = "faults", r.EndUs, "#f6c8c8"
		case rowLeader:
			a.Tag, a.BackgroundColor = "leaders", "#cdeccd"
		case rowCheck:
			a.Tag, a.BackgroundColor = "failed checks", "#ff8080"
		default:
			continue
		}
		out = append(out, a)
	}
	return out
}

// ReportPaths are the pages WriteReport writes for a run.
type ReportPaths struct{ Timeline, History string }

// ReportPaths names the pages for a run in dir: base.timeline.html and
// base.history.html.
func ReportPathsFor(dir, base string) ReportPaths {
	return ReportPaths{
		Timeline: filepath.Join(dir, base+".timeline.html"),
		History:  filepath.Join(dir, base+".history.html"),
	}
}

// WriteReport writes both pages of a finished run into dir.
func (w *World) WriteReport(dir, base string) (ReportPaths, error) {
	p := ReportPathsFor(dir, base)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return p, err
	}
	if err := writeFile(p.Timeline, w.WriteTimelineHTML); err != nil {
		return p, err
	}
	return p, writeFile(p.History, w.WriteHistoryHTML)
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// timelineHTML is the page; the run's data replaces /*DATA*/.
const timelineHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>detcd-sim timeline</title>
<style>
body { font: 13px/1.35 system-ui, sans-serif; margin: 0; color: #222; }
header { padding: 10px 14px; background: #f4f4f6; border-bottom: 1px solid #ccc; }
h1 { font-size: 17px; margin: 0 0 6px; }
code, td { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
.failures { margin: 6px 0; padding: 6px 10px; background: #ffe3e3; border: 1px solid #e08080; }
.failures li { margin: 2px 0; }
.passed { margin: 6px 0; padding: 6px 10px; background: #e3f7e3; border: 1px solid #80c080; }
.filters label { margin-right: 12px; white-space: nowrap; }
.settings { color: #666; font-size: 11px; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
thead th { position: sticky; top: 0; background: #333; color: #fff; padding: 4px; text-align: left; z-index: 1; }
th.time { width: 95px; }
td { border-bottom: 1px solid #eee; padding: 2px 4px; vertical-align: top; overflow-wrap: anywhere; }
td.time { color: #666; text-align: right; }
td.down, .key.down { background: repeating-linear-gradient(45deg, #fff, #fff 4px, #e0e0e0 4px, #e0e0e0 8px); }
td.paused, .key.paused { background: repeating-linear-gradient(90deg, #fff, #fff 4px, #efe3bf 4px, #efe3bf 8px); }
.key { margin-right: 10px; padding: 0 6px; border: 1px solid #ccc; }
.legend { font-size: 12px; margin-top: 4px; }
.op { color: #1a4fa0; }
.op.unknown { color: #8a6d00; }
.msg { color: #555; }
.heartbeat { color: #999; }
.drop { color: #c06000; }
.fault { background: #fbd9d9; color: #900; font-weight: 600; }
.member { color: #6a2ca0; font-weight: 600; }
.leader { background: #d8f2d8; color: #135e13; font-weight: 600; }
.phase { background: #e6e6f8; font-weight: 600; }
.check { background: #ff9d9d; color: #600; font-weight: 700; }
.detail { font-weight: 400; color: #444; white-space: pre-wrap; font-size: 11px; }
.span { color: #888; font-weight: 400; }
</style>
</head>
<body>
<header>
<h1 id="title"></h1>
<div>replay: <code id="replay"></code></div>
<div id="verdict"></div>
<div class="settings" id="settings"></div>
<div class="filters" id="filters"></div>
<div class="legend">shaded cells: <span class="key down">member down</span><span class="key paused">member paused</span></div>
</header>
<table id="timeline"><thead><tr id="head"></tr></thead><tbody id="rows"></tbody></table>
<script id="data" type="application/json">/*DATA*/</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const kinds = [
  ["op", "client operations"], ["msg", "messages"], ["heartbeat", "heartbeats"], ["drop", "dropped messages"],
  ["fault", "faults"], ["member", "restarts"], ["leader", "leader changes"], ["phase", "phases"], ["check", "failed checks"],
];
const shown = {};
for (const [k] of kinds) shown[k] = k !== "heartbeat";

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function secs(us) { return (us / 1e6).toFixed(6); }
function span(r) {
  if (r.end < 0) return " (no answer)";
  if (r.end <= r.at) return "";
  const d = r.end - r.at;
  return d >= 1000 ? " (" + (d / 1000).toFixed(1) + " ms)" : " (" + d + " µs)";
}

document.title = data.title + " timeline";
document.getElementById("title").textContent = data.title + " — timeline";
document.getElementById("replay").textContent = data.replay;
document.getElementById("settings").textContent = "settings: " + data.settings;
const verdict = document.getElementById("verdict");
if (data.failures.length) {
  const box = el("div", "failures");
  box.appendChild(el("b", "", "failed checks (" + data.failures.length + "):"));
  const ul = el("ul");
  for (const f of data.failures) {
    const li = el("li");
    const a = el("a", "", f);
    a.href = "#first-check";
    li.appendChild(a);
    ul.appendChild(li);
  }
  box.appendChild(ul);
  verdict.appendChild(box);
} else {
  verdict.appendChild(el("div", "passed", "every check passed"));
}

const counts = {};
for (const r of data.rows) counts[r.kind] = (counts[r.kind] || 0) + 1;
const filters = document.getElementById("filters");
filters.appendChild(el("span", "", "show: "));
for (const [k, label] of kinds) {
  const l = el("label");
  const c = el("input");
  c.type = "checkbox";
  c.checked = shown[k];
  c.dataset.kind = k;
  c.addEventListener("change", () => { shown[k] = c.checked; render(); });
  l.appendChild(c);
  l.appendChild(document.createTextNode(" " + label + " (" + (counts[k] || 0) + ")"));
  filters.appendChild(l);
}

const head = document.getElementById("head");
head.appendChild(el("th", "time", "time (s)"));
for (const m of data.members) head.appendChild(el("th", "member-col", m));
head.appendChild(el("th", "cluster-col", "cluster"));
const ncols = data.members.length + 1;

function render() {
  const body = document.getElementById("rows");
  body.textContent = "";
  const frag = document.createDocumentFragment();
  let firstCheck = true;
  let down = 0, paused = 0;
  for (const r of data.rows) {
    if (r.known) { down = r.down || 0; paused = r.paused || 0; }
    if (!shown[r.kind]) continue;
    const tr = el("tr", "row " + r.kind);
    tr.appendChild(el("td", "time", secs(r.at)));
    const col = r.col < 0 ? ncols - 1 : r.col;
    for (let i = 0; i < ncols; i++) {
      const td = el("td");
      if (i < ncols - 1 && (down >> i) & 1) td.className = "down";
      else if (i < ncols - 1 && (paused >> i) & 1) td.className = "paused";
      if (i === col) {
        td.className = r.kind + (r.kind === "op" && r.end < 0 ? " unknown" : "");
        td.appendChild(document.createTextNode(r.text));
        td.appendChild(el("span", "span", span(r)));
        if (r.detail) td.appendChild(el("div", "detail", r.detail.trim()));
      }
      tr.appendChild(td);
    }
    if (r.kind === "check" && firstCheck) { tr.id = "first-check"; firstCheck = false; }
    frag.appendChild(tr);
  }
  body.appendChild(frag);
}
render();
// The rows are built after the page loaded: go to a #fragment now.
if (location.hash) {
  const target = document.getElementById(location.hash.slice(1));
  if (target) target.scrollIntoView({block: "center"});
}
</script>
</body>
</html>
`
