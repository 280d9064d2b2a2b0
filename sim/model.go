package sim

import (
	"fmt"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

// groupKeysMax bounds the keys in a group, so a group's state is a
// comparable value porcupine can deduplicate.
const groupKeysMax = 3

// keyState is one key in the model. A write whose outcome is unknown may
// have been applied with a revision nobody saw: then mod (and create, for
// a new key) are -1 until a read reveals them, and modLow bounds them.
type keyState struct {
	exists  bool
	value   string
	mod     int64
	create  int64
	version int64
	// modLow and createLow bound unknown revisions from below: the floor
	// when the write happened.
	modLow, createLow int64
}

// groupState is the model of one key group: its keys and floor, the
// highest revision any operation has shown, which every later write must
// exceed and every later read must reach.
type groupState struct {
	keys  [groupKeysMax]keyState
	floor int64
}

func keyIndex(key string) int { return int(key[len(key)-1] - '0') }

// etcdModel is etcd's key-value semantics for one group, as porcupine
// needs it: histories partition by group.
func etcdModel() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			by := map[int][]porcupine.Operation{}
			var groups []int
			for _, o := range h {
				g := o.Input.(*Op).Group
				if _, ok := by[g]; !ok {
					groups = append(groups, g)
				}
				by[g] = append(by[g], o)
			}
			sort.Ints(groups)
			out := make([][]porcupine.Operation, 0, len(groups))
			for _, g := range groups {
				out = append(out, by[g])
			}
			return out
		},
		Init: func() []interface{} { return []interface{}{groupState{}} },
		Step: func(state, input, _ interface{}) []interface{} {
			s, op := state.(groupState), input.(*Op)
			var out []interface{}
			for _, n := range stepModel(s, op) {
				out = append(out, n)
			}
			return out
		},
		DescribeOperation: func(input, _ interface{}) string { return input.(*Op).String() },
		DescribeState: func(state interface{}) string {
			s := state.(groupState)
			var b strings.Builder
			fmt.Fprintf(&b, "floor %d", s.floor)
			for i, k := range s.keys {
				if k.exists {
					fmt.Fprintf(&b, " k%d=%s(m%d c%d v%d)", i, k.value, k.mod, k.create, k.version)
				}
			}
			return b.String()
		},
	}
	return nm.ToModel()
}

// porcupineOps turns the history into porcupine's form: linearizable
// operations only, unknown outcomes returning at infinity, and each
// restore an instant that sets every group to the backup's state
// (porcupineTimes, restoreOps).
func (c *checkers) porcupineOps() []porcupine.Operation {
	var out []porcupine.Operation
	for _, op := range c.history {
		if !op.linearizable() {
			continue
		}
		call, ret := porcupineTimes(op, c.restores)
		out = append(out, porcupine.Operation{ClientId: op.Client, Input: op, Output: op, Call: call, Return: ret})
	}
	for _, op := range restoreOps(c.restores, c.w.settings.KeyGroups, len(c.w.clients)) {
		at := 2*op.Call + 1
		out = append(out, porcupine.Operation{ClientId: op.Client, Input: op, Output: op, Call: at, Return: at})
	}
	return out
}
