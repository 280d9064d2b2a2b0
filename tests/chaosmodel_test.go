package tests

// The chaos suite's history and its checkers: a porcupine model of etcd's
// key-value semantics for one key (the history is partitioned by key),
// with unknown outcomes for writes whose answer never came; the
// durability check of the final state; the serializable-read check; and
// the watch check. The idea is the simulator's (sim/model.go), cut down
// to single keys.

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

type opKind int

const (
	opPut opKind = iota
	opCAS
	opGet       // linearizable
	opGetSerial // serializable: not in the porcupine check
)

func (k opKind) String() string {
	return [...]string{"put", "cas", "get", "sget"}[k]
}

// outcome of an operation as the client saw it.
type outcome int

const (
	outOK      outcome = iota
	outFailed          // definitely did not take effect (reads that errored, writes never sent)
	outUnknown         // a write whose answer did not come: it may or may not have happened
)

// kvSeen is a key as a read returned it.
type kvSeen struct {
	Value          string
	Mod, Create, V int64
}

// chaosOp is one client operation and what it returned.
type chaosOp struct {
	Client int
	Kind   opKind
	Key    string
	Value  string // put and cas: the value written (unique in the run)
	Expect int64  // cas: the mod revision compared against (0: the key is absent)
	Member string // the member it was sent to
	Call   int64  // ns since the run's start
	Return int64
	Out    outcome
	Err    string
	// Results.
	Rev       int64    // header revision
	Succeeded bool     // cas
	KVs       []kvSeen // get, sget, and a cas that failed (its else branch reads the key)
}

func (o *chaosOp) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "c%d %s %s", o.Client, o.Kind, o.Key)
	switch o.Kind {
	case opPut:
		fmt.Fprintf(&b, "=%s", o.Value)
	case opCAS:
		fmt.Fprintf(&b, " if mod==%d then =%s", o.Expect, o.Value)
	}
	fmt.Fprintf(&b, " @%s [%.3fs,", o.Member, float64(o.Call)/1e9)
	if o.Out == outUnknown {
		b.WriteString("?]")
	} else {
		fmt.Fprintf(&b, "%.3fs]", float64(o.Return)/1e9)
	}
	switch o.Out {
	case outUnknown:
		fmt.Fprintf(&b, " unknown (%s)", o.Err)
		return b.String()
	case outFailed:
		fmt.Fprintf(&b, " failed (%s)", o.Err)
		return b.String()
	}
	fmt.Fprintf(&b, " rev %d", o.Rev)
	if o.Kind == opCAS {
		fmt.Fprintf(&b, " succeeded=%v", o.Succeeded)
	}
	if o.Kind != opPut && !(o.Kind == opCAS && o.Succeeded) {
		if len(o.KVs) == 0 {
			b.WriteString(" -> absent")
		}
		for _, kv := range o.KVs {
			fmt.Fprintf(&b, " -> %s (mod %d create %d ver %d)", kv.Value, kv.Mod, kv.Create, kv.V)
		}
	}
	return b.String()
}

// keyState is one key in the model. A write whose outcome is unknown may
// have taken effect at a revision nobody saw: mod (and create, for a new
// key) are then -1 until a read reveals them, and modLow (createLow)
// bounds them from below. floor is the highest revision an operation
// linearized so far has shown: every later write must be above it and
// every later read at or above it (revisions are global and only grow).
type keyState struct {
	exists            bool
	value             string
	mod, create, ver  int64
	modLow, createLow int64
	floor             int64
}

func chaosModel() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			by := map[string][]porcupine.Operation{}
			var keys []string
			for _, o := range h {
				k := o.Input.(*chaosOp).Key
				if _, ok := by[k]; !ok {
					keys = append(keys, k)
				}
				by[k] = append(by[k], o)
			}
			sort.Strings(keys)
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, by[k])
			}
			return out
		},
		Init: func() []interface{} { return []interface{}{keyState{}} },
		Step: func(state, input, _ interface{}) []interface{} {
			var out []interface{}
			for _, s := range stepKey(state.(keyState), input.(*chaosOp)) {
				out = append(out, s)
			}
			return out
		},
		DescribeOperation: func(input, _ interface{}) string { return input.(*chaosOp).String() },
		DescribeState: func(state interface{}) string {
			s := state.(keyState)
			if !s.exists {
				return fmt.Sprintf("absent (floor %d)", s.floor)
			}
			return fmt.Sprintf("%s mod %d create %d ver %d (floor %d)", s.value, s.mod, s.create, s.ver, s.floor)
		},
	}
	return nm.ToModel()
}

func stepKey(s keyState, op *chaosOp) []keyState {
	if op.Out == outUnknown {
		return append([]keyState{s}, applyUnknownWrite(s, op)...)
	}
	switch op.Kind {
	case opPut:
		if op.Rev <= s.floor {
			return nil
		}
		putKey(&s, op.Value, op.Rev)
		s.floor = op.Rev
		return []keyState{s}
	case opGet:
		if op.Rev < s.floor || !readMatches(&s, op.KVs, op.Rev) {
			return nil
		}
		s.floor = op.Rev
		return []keyState{s}
	case opCAS:
		if op.Succeeded {
			if op.Rev <= s.floor {
				return nil
			}
			switch {
			case !s.exists:
				if op.Expect != 0 {
					return nil
				}
			case s.mod < 0:
				if op.Expect <= s.modLow {
					return nil
				}
				s.mod = op.Expect
			case s.mod != op.Expect:
				return nil
			}
			putKey(&s, op.Value, op.Rev)
			s.floor = op.Rev
			return []keyState{s}
		}
		if op.Rev < s.floor {
			return nil
		}
		if s.exists && s.mod == op.Expect || !s.exists && op.Expect == 0 {
			return nil // the compare should have held
		}
		if !readMatches(&s, op.KVs, op.Rev) {
			return nil
		}
		if s.exists && s.mod == op.Expect {
			return nil // a revision the read revealed makes the compare hold
		}
		s.floor = op.Rev
		return []keyState{s}
	}
	return nil
}

// putKey applies a write at rev (-1: unknown, above the current floor).
func putKey(s *keyState, value string, rev int64) {
	if s.exists {
		s.ver++
	} else {
		s.exists, s.ver, s.create, s.createLow = true, 1, rev, s.floor
	}
	s.value, s.mod, s.modLow = value, rev, s.floor
}

// readMatches checks a read against the model, learning the revisions
// that unknown writes left open.
func readMatches(s *keyState, kvs []kvSeen, rev int64) bool {
	if len(kvs) > 1 || (len(kvs) == 1) != s.exists {
		return false
	}
	if !s.exists {
		return true
	}
	r := kvs[0]
	if r.Value != s.value || r.V != s.ver || r.Mod > rev {
		return false
	}
	if s.mod < 0 {
		if r.Mod <= s.modLow {
			return false
		}
		s.mod = r.Mod
	} else if r.Mod != s.mod {
		return false
	}
	if s.create < 0 {
		if r.Create <= s.createLow {
			return false
		}
		s.create = r.Create
	} else if r.Create != s.create {
		return false
	}
	return true
}

// applyUnknownWrite is the state if a write whose outcome is unknown took
// effect.
func applyUnknownWrite(s keyState, op *chaosOp) []keyState {
	switch op.Kind {
	case opPut:
		putKey(&s, op.Value, -1)
	case opCAS:
		holds := s.exists && (s.mod == op.Expect || s.mod < 0 && op.Expect > s.modLow) || !s.exists && op.Expect == 0
		if !holds {
			return nil
		}
		putKey(&s, op.Value, -1)
	default:
		return nil
	}
	return []keyState{s}
}

// linearizability is the verdict of checkLinearizable.
type linearizability struct {
	result   porcupine.CheckResult
	ops      int
	keys     int
	illegal  []string // one description per key that does not linearize
	files    []string // porcupine visualizations of the illegal keys
	duration time.Duration
}

// checkLinearizable checks the linearizable operations of the history,
// key by key, within timeout: past it the verdict is Unknown, never a hang.
func checkLinearizable(history []*chaosOp, timeout time.Duration, visualDir string) linearizability {
	start := time.Now()
	byKey := map[string][]porcupine.Operation{}
	var keys []string
	n := 0
	for i, op := range history {
		if op.Out == outFailed || op.Kind == opGetSerial {
			continue
		}
		ret := op.Return
		if op.Out == outUnknown {
			ret = math.MaxInt64
		}
		if _, ok := byKey[op.Key]; !ok {
			keys = append(keys, op.Key)
		}
		byKey[op.Key] = append(byKey[op.Key], porcupine.Operation{ClientId: op.Client, Input: op, Output: op, Call: op.Call, Return: ret, Metadata: i})
		n++
	}
	sort.Strings(keys)
	res := linearizability{result: porcupine.Ok, ops: n, keys: len(keys)}
	model := chaosModel()
	deadline := start.Add(timeout)
	for _, k := range keys {
		left := time.Until(deadline)
		if left <= 0 {
			res.result = porcupine.Unknown
			break
		}
		r, info := porcupine.CheckOperationsVerbose(model, byKey[k], left)
		switch r {
		case porcupine.Unknown:
			res.result = porcupine.Unknown
		case porcupine.Illegal:
			res.result = porcupine.Illegal
			res.illegal = append(res.illegal, describeIllegal(k, byKey[k], info))
			if visualDir != "" {
				path := filepath.Join(visualDir, "porcupine-"+strings.NewReplacer("/", "_").Replace(k)+".html")
				if err := porcupine.VisualizePath(model, info, path); err == nil {
					res.files = append(res.files, path)
				}
			}
		}
		if res.result == porcupine.Unknown {
			break
		}
	}
	res.duration = time.Since(start)
	return res
}

// describeIllegal reports the end of the longest linearizable prefix of a
// key's history and the operations it leaves out: one of those is where
// the history breaks.
func describeIllegal(key string, ops []porcupine.Operation, info porcupine.LinearizationInfo) string {
	var best []int
	for _, p := range info.PartialLinearizations() {
		for _, l := range p {
			if len(l) > len(best) {
				best = l
			}
		}
	}
	in := map[int]bool{}
	for _, i := range best {
		in[i] = true
	}
	var b strings.Builder
	fmt.Fprintf(&b, "key %s: %d of its %d operations linearize; the longest linearizable prefix ends with:\n", key, len(best), len(ops))
	for _, i := range best[max(0, len(best)-8):] {
		fmt.Fprintf(&b, "    %s\n", ops[i].Input.(*chaosOp))
	}
	b.WriteString("  and leaves out (first 8 by call time):\n")
	var left []*chaosOp
	for i, o := range ops {
		if !in[i] {
			left = append(left, o.Input.(*chaosOp))
		}
	}
	sort.Slice(left, func(i, j int) bool { return left[i].Call < left[j].Call })
	for _, o := range left[:min(8, len(left))] {
		fmt.Fprintf(&b, "    %s\n", o)
	}
	return b.String()
}

// writeIndex maps every value written to the write that sent it (values
// are unique in a run).
func writeIndex(history []*chaosOp) map[string]*chaosOp {
	w := map[string]*chaosOp{}
	for _, op := range history {
		if (op.Kind == opPut || op.Kind == opCAS) && op.Out != outFailed {
			w[op.Value] = op
		}
	}
	return w
}

// writeTookEffect reports whether a write is known to have happened, and
// at which revision.
func writeTookEffect(op *chaosOp) (rev int64, ok bool) {
	if op.Out != outOK {
		return 0, false
	}
	if op.Kind == opPut || op.Kind == opCAS && op.Succeeded {
		return op.Rev, true
	}
	return 0, false
}

// checkDurability requires every key's final value to be its last
// acknowledged write or a write that may have happened after it.
func checkDurability(history []*chaosOp, final map[string]kvSeen) []string {
	writes := writeIndex(history)
	lastAcked := map[string]*chaosOp{}
	written := map[string]bool{}
	for _, op := range history {
		if op.Kind != opPut && op.Kind != opCAS || op.Out == outFailed {
			continue
		}
		written[op.Key] = true
		if rev, ok := writeTookEffect(op); ok {
			if cur := lastAcked[op.Key]; cur == nil || rev > cur.Rev {
				lastAcked[op.Key] = op
			}
		}
	}
	var fails []string
	keys := make([]string, 0, len(written))
	for k := range written {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		a := lastAcked[k]
		f, ok := final[k]
		if !ok {
			if a != nil {
				fails = append(fails, fmt.Sprintf("%s: gone at the end, but %s was acknowledged at revision %d (%s)", k, a.Value, a.Rev, a))
			}
			continue
		}
		w := writes[f.Value]
		switch {
		case w == nil || w.Key != k:
			fails = append(fails, fmt.Sprintf("%s: holds %q (mod %d), which no write to it sent", k, f.Value, f.Mod))
		case a != nil && f.Mod < a.Rev:
			fails = append(fails, fmt.Sprintf("%s: holds %s at mod revision %d, older than %s acknowledged at revision %d (%s)", k, f.Value, f.Mod, a.Value, a.Rev, a))
		case a != nil && f.Mod == a.Rev && f.Value != a.Value:
			fails = append(fails, fmt.Sprintf("%s: holds %s at revision %d, where %s was acknowledged", k, f.Value, f.Mod, a.Value))
		case w.Out == outOK && (w.Kind == opPut || w.Succeeded) && f.Mod != w.Rev:
			fails = append(fails, fmt.Sprintf("%s: holds %s at mod revision %d, but it was acknowledged at revision %d", k, f.Value, f.Mod, w.Rev))
		case w.Out == outOK && w.Kind == opCAS && !w.Succeeded:
			fails = append(fails, fmt.Sprintf("%s: holds %s, written by a CAS that answered it failed (%s)", k, f.Value, w))
		}
	}
	return fails
}

// checkSerializable checks serializable reads, which may be stale: what
// they return must have been written to that key, at the revision its
// write was acknowledged at, and not after the read's own revision.
func checkSerializable(history []*chaosOp) []string {
	writes := writeIndex(history)
	var fails []string
	for _, op := range history {
		if op.Kind != opGetSerial || op.Out != outOK {
			continue
		}
		for _, kv := range op.KVs {
			w := writes[kv.Value]
			switch {
			case w == nil || w.Key != op.Key:
				fails = append(fails, fmt.Sprintf("serializable read returned a value nobody wrote to the key: %s", op))
			case kv.Mod > op.Rev:
				fails = append(fails, fmt.Sprintf("serializable read returned a key newer than its revision: %s", op))
			case w.Out == outOK && (w.Kind == opPut || w.Succeeded) && kv.Mod != w.Rev:
				fails = append(fails, fmt.Sprintf("serializable read returned %s at mod %d, acknowledged at %d: %s", kv.Value, kv.Mod, w.Rev, op))
			case w.Out == outOK && w.Kind == opCAS && !w.Succeeded:
				fails = append(fails, fmt.Sprintf("serializable read returned %s, written by a CAS that failed: %s", kv.Value, op))
			}
		}
		if len(fails) > 20 {
			break
		}
	}
	return fails
}

// watchEvent is one event a watcher received.
type watchEvent struct {
	Key, Value       string
	Mod, Create, Ver int64
	Delete           bool
}

// checkWatch checks one watcher's events: every revision in (from, to]
// exactly once and in order (each write of the workload is one revision
// with one event under the prefix), each event the write that made it,
// every acknowledged write in its place, and the last event of each key
// its final state.
func checkWatch(name string, events []watchEvent, from, to int64, history []*chaosOp, final map[string]kvSeen) []string {
	var fails []string
	add := func(format string, args ...any) {
		if len(fails) < 20 {
			fails = append(fails, name+": "+fmt.Sprintf(format, args...))
		}
	}
	writes := writeIndex(history)
	byRev := map[int64]watchEvent{}
	next := from + 1
	for i, ev := range events {
		switch {
		case ev.Mod < next && byRev[ev.Mod].Key == ev.Key && byRev[ev.Mod].Value == ev.Value:
			add("event %d: duplicate: %s=%s at revision %d again (expected revision %d next)", i, ev.Key, ev.Value, ev.Mod, next)
		case ev.Mod < next:
			add("event %d: out of order: %s=%s at revision %d after revision %d", i, ev.Key, ev.Value, ev.Mod, next-1)
		case ev.Mod > next:
			add("event %d: gap: revisions %d-%d missing before %s=%s at revision %d", i, next, ev.Mod-1, ev.Key, ev.Value, ev.Mod)
		}
		if ev.Mod >= next {
			next = ev.Mod + 1
		}
		if _, seen := byRev[ev.Mod]; !seen {
			byRev[ev.Mod] = ev
		}
		if ev.Delete {
			add("event %d: a delete of %s at revision %d; the workload deletes nothing", i, ev.Key, ev.Mod)
			continue
		}
		w := writes[ev.Value]
		switch {
		case w == nil || w.Key != ev.Key:
			add("event %d: %s=%s at revision %d, which no write to it sent", i, ev.Key, ev.Value, ev.Mod)
		case w.Out == outOK && (w.Kind == opPut || w.Succeeded) && w.Rev != ev.Mod:
			add("event %d: %s=%s at revision %d, acknowledged at revision %d", i, ev.Key, ev.Value, ev.Mod, w.Rev)
		case w.Out == outOK && w.Kind == opCAS && !w.Succeeded:
			add("event %d: %s=%s at revision %d, written by a CAS that answered it failed", i, ev.Key, ev.Value, ev.Mod)
		}
	}
	if next <= to {
		add("saw revisions up to %d, the final revision is %d", next-1, to)
	}
	for _, op := range history {
		rev, ok := writeTookEffect(op)
		if !ok || rev <= from || rev > to {
			continue
		}
		if ev, seen := byRev[rev]; !seen || ev.Key != op.Key || ev.Value != op.Value {
			add("acknowledged write missing from the watch: %s (at its revision: %+v)", op, ev)
		}
	}
	last := map[string]watchEvent{}
	for _, ev := range events {
		if ev.Mod <= to {
			last[ev.Key] = ev
		}
	}
	for k, ev := range last {
		f, ok := final[k]
		if !ok || f.Value != ev.Value || f.Mod != ev.Mod || f.Create != ev.Create || f.V != ev.Ver {
			add("the last event of %s (%s mod %d create %d ver %d) is not its final state (%+v, present %v)", k, ev.Value, ev.Mod, ev.Create, ev.Ver, f, ok)
		}
	}
	return fails
}

// writeHistory saves the history, one operation a line, for a failure's
// post-mortem.
func writeHistory(path string, history []*chaosOp) error {
	var b strings.Builder
	sorted := append([]*chaosOp(nil), history...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Call < sorted[j].Call })
	for _, op := range sorted {
		b.WriteString(op.String())
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
