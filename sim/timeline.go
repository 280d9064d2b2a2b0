package sim

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// The kinds of timeline rows. The page filters on them.
const (
	rowOp        = "op"        // a client operation, at the member it went to
	rowMsg       = "msg"       // a raft message delivered
	rowHeartbeat = "heartbeat" // a heartbeat or its response delivered
	rowDrop      = "drop"      // a raft message the network dropped
	rowFault     = "fault"     // an injected fault
	rowMember    = "member"    // a member restarted or refused to
	rowLeader    = "leader"    // a member became leader of a new term
	rowPhase     = "phase"     // the liveness phase, convergence
	rowCheck     = "check"     // a failed check
)

// clusterColumn is the column of rows that concern no one member.
const clusterColumn = -1

// TimelineRow is one row of a run's timeline: something that happened at
// AtUs (until EndUs for spans; EndUs is -1 for an operation whose outcome
// never came), in member column Column (an index, or clusterColumn).
type TimelineRow struct {
	AtUs   int64  `json:"at"`
	EndUs  int64  `json:"end"`
	Column int    `json:"col"`
	Kind   string `json:"kind"`
	Text   string `json:"text"`
	Detail string `json:"detail,omitempty"`
	// Down and Paused have bit i set while member i is down (crashed,
	// removed, refusing to start) or paused, as of the row; the page
	// shades their cells. Client operations, added at the end, carry
	// none: the page keeps the last known state.
	Down   uint32 `json:"down,omitempty"`
	Paused uint32 `json:"paused,omitempty"`
	Known  bool   `json:"known,omitempty"`
}

// timeline collects a run's rows as the world produces them. It only
// appends: it draws no randomness and writes nothing to the trace, so a
// recorded run has the same trace hash as an unrecorded one.
type timeline struct {
	rows []TimelineRow
	// capturing is the fault row that collects the trace lines logged by
	// the same event as the fault (which sides a partition cut, which
	// files a crash tore), as its detail.
	capturing   int
	captureStep uint64
}

// EnableTimeline makes the world keep a timeline of the run, for
// WriteTimelineHTML. Call it before Run.
func (w *World) EnableTimeline() {
	w.timeline = &timeline{capturing: -1}
	w.trace.onLine = w.captureLine
}

func (w *World) addRow(r TimelineRow) {
	if w.timeline == nil {
		return
	}
	r.Known = true
	for _, m := range w.members {
		switch {
		case !m.up || m.removed:
			r.Down |= 1 << m.idx
		case m.paused:
			r.Paused |= 1 << m.idx
		}
	}
	w.timeline.rows = append(w.timeline.rows, r)
}

// noteFault records a fault as it is injected: in the run's schedule,
// which shrinking replays, and on the timeline.
func (w *World) noteFault(k Faults, m *member, heal int64) {
	w.injected = append(w.injected, ScheduledFault{AtUs: w.now, Kind: k, Member: m.idx, ForUs: heal})
	if w.timeline == nil {
		return
	}
	col, end := m.idx, w.now+heal
	switch k {
	case FaultPartition, FaultPowerLoss:
		col = clusterColumn // the member drawn does not say where it acts
	case FaultMembership:
		col, end = clusterColumn, w.now // a change takes its own time
	case FaultFsync, FaultClock:
		end = w.now // nothing to heal
	}
	w.timeline.capturing, w.timeline.captureStep = len(w.timeline.rows), w.stats.Events
	w.addRow(TimelineRow{AtUs: w.now, EndUs: end, Column: col, Kind: rowFault, Text: k.String()})
}

// captureLine adds a trace line to the detail of the fault being injected,
// if it comes from the same event.
func (w *World) captureLine(now int64, line []byte) {
	t := w.timeline
	if t.capturing < 0 {
		return
	}
	r := &t.rows[t.capturing]
	if w.stats.Events != t.captureStep || now != r.AtUs {
		t.capturing = -1
		return
	}
	r.Detail += string(line) + "\n"
}

// noteMessage records a raft message delivered to member to, in its
// column, when it arrived.
func (w *World) noteMessage(from, to *member, sentUs int64, desc string) {
	if w.timeline == nil {
		return
	}
	kind := rowMsg
	if strings.HasPrefix(desc, "MsgHeartbeat") {
		kind = rowHeartbeat
	}
	text := fmt.Sprintf("%s→%s %s (sent %.1f ms before)", from.name, to.name, desc, float64(w.now-sentUs)/1000)
	w.addRow(TimelineRow{AtUs: w.now, EndUs: w.now, Column: to.idx, Kind: kind, Text: text})
}

func (w *World) noteDrop(from *member, to uint64, desc string) {
	if w.timeline == nil {
		return
	}
	w.addRow(TimelineRow{AtUs: w.now, EndUs: w.now, Column: from.idx, Kind: rowDrop, Text: "drop " + from.name + "→m" + strconv.FormatUint(to, 10) + " " + desc})
}

// note records an instant row.
func (w *World) note(col int, kind, text string) {
	w.addRow(TimelineRow{AtUs: w.now, EndUs: w.now, Column: col, Kind: kind, Text: text})
}

// timelineRows is the whole timeline: the recorded rows and the client
// operations from the history, in time order.
func (w *World) timelineRows() []TimelineRow {
	rows := append([]TimelineRow(nil), w.timeline.rows...)
	for _, op := range w.checks.history {
		end := op.Return
		if op.Unknown {
			end = -1
		}
		rows = append(rows, TimelineRow{AtUs: op.Call, EndUs: end, Column: op.Member, Kind: rowOp, Text: op.String()})
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].AtUs < rows[j].AtUs })
	return rows
}
