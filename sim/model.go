package sim

import (
	"fmt"
	"math"
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

func stepModel(s groupState, op *Op) []groupState {
	if op.Unknown {
		return append([]groupState{s}, applyUnknown(s, op)...)
	}
	switch op.Kind {
	case opPut:
		if op.Rev <= s.floor {
			return nil
		}
		put(&s, op.Key, op.Value, op.Rev)
		s.floor = op.Rev
		return []groupState{s}
	case opGet:
		if op.Rev < s.floor || !readMatches(&s, []string{op.Key}, op.KVs, op.Rev) {
			return nil
		}
		s.floor = op.Rev
		return []groupState{s}
	case opRangeGroup:
		var keys []string
		for i := 0; i < groupKeysMax; i++ {
			keys = append(keys, groupKey(op.Group, i))
		}
		if op.Rev < s.floor || !readMatches(&s, keys, op.KVs, op.Rev) {
			return nil
		}
		s.floor = op.Rev
		return []groupState{s}
	case opDelete:
		k := &s.keys[keyIndex(op.Key)]
		if k.exists {
			if op.Deleted != 1 || op.Rev <= s.floor {
				return nil
			}
			*k = keyState{}
		} else if op.Deleted != 0 || op.Rev < s.floor {
			return nil
		}
		s.floor = op.Rev
		return []groupState{s}
	case opCAS:
		return stepCAS(s, op)
	case opMultiPut:
		if op.Rev <= s.floor {
			return nil
		}
		for _, key := range op.Keys {
			put(&s, key, op.Value, op.Rev)
		}
		s.floor = op.Rev
		return []groupState{s}
	}
	return nil
}

// put applies a write at rev (-1: unknown, above the current floor).
func put(s *groupState, key, value string, rev int64) {
	k := &s.keys[keyIndex(key)]
	if k.exists {
		k.version++
	} else {
		*k = keyState{exists: true, version: 1, create: rev, createLow: s.floor}
	}
	k.value, k.mod, k.modLow = value, rev, s.floor
}

// readMatches checks what a read returned against the model, learning
// revisions that unknown writes left open.
func readMatches(s *groupState, keys []string, kvs []kv, rev int64) bool {
	got := map[string]kv{}
	for _, k := range kvs {
		got[k.Key] = k
	}
	if len(got) != len(kvs) {
		return false
	}
	seen := 0
	for _, key := range keys {
		k := &s.keys[keyIndex(key)]
		r, ok := got[key]
		if ok {
			seen++
		}
		if ok != k.exists {
			return false
		}
		if !ok {
			continue
		}
		if r.Value != k.value || r.Version != k.version || r.Mod > rev {
			return false
		}
		if k.mod < 0 {
			if r.Mod <= k.modLow {
				return false
			}
			k.mod = r.Mod
		} else if r.Mod != k.mod {
			return false
		}
		if k.create < 0 {
			if r.Create <= k.createLow {
				return false
			}
			k.create = r.Create
		} else if r.Create != k.create {
			return false
		}
	}
	return seen == len(kvs)
}

func stepCAS(s groupState, op *Op) []groupState {
	k := &s.keys[keyIndex(op.Key)]
	if op.Succeeded {
		if op.Rev <= s.floor {
			return nil
		}
		switch {
		case !k.exists:
			if op.ExpectMod != 0 {
				return nil
			}
		case k.mod < 0:
			if op.ExpectMod <= k.modLow {
				return nil
			}
			k.mod = op.ExpectMod
		case k.mod != op.ExpectMod:
			return nil
		}
		put(&s, op.Key, op.Value, op.Rev)
		s.floor = op.Rev
		return []groupState{s}
	}
	if op.Rev < s.floor {
		return nil
	}
	if k.exists && k.mod == op.ExpectMod || !k.exists && op.ExpectMod == 0 {
		return nil // the compare should have held
	}
	if !readMatches(&s, []string{op.Key}, op.KVs, op.Rev) {
		return nil
	}
	if k := s.keys[keyIndex(op.Key)]; k.exists && k.mod == op.ExpectMod {
		return nil // a revision the read revealed makes the compare hold
	}
	s.floor = op.Rev
	return []groupState{s}
}

// applyUnknown is the state if a write with an unknown outcome took effect.
func applyUnknown(s groupState, op *Op) []groupState {
	switch op.Kind {
	case opPut:
		put(&s, op.Key, op.Value, -1)
	case opMultiPut:
		for _, key := range op.Keys {
			put(&s, key, op.Value, -1)
		}
	case opDelete:
		if !s.keys[keyIndex(op.Key)].exists {
			return nil
		}
		s.keys[keyIndex(op.Key)] = keyState{}
	case opCAS:
		k := s.keys[keyIndex(op.Key)]
		holds := k.exists && (k.mod == op.ExpectMod || k.mod < 0 && op.ExpectMod > k.modLow) || !k.exists && op.ExpectMod == 0
		if !holds {
			return nil
		}
		if k.mod < 0 {
			s.keys[keyIndex(op.Key)].mod = op.ExpectMod
		}
		put(&s, op.Key, op.Value, -1)
	default:
		return nil
	}
	return []groupState{s}
}

// porcupineOps turns the history into porcupine's form: linearizable
// operations only, unknown outcomes returning at infinity.
func porcupineOps(history []*Op) []porcupine.Operation {
	var out []porcupine.Operation
	for _, op := range history {
		if op.Failed || op.Kind == opGetSerializable {
			continue
		}
		ret := op.Return
		if op.Unknown {
			ret = math.MaxInt64
		}
		out = append(out, porcupine.Operation{ClientId: op.Client, Input: op, Output: op, Call: op.Call, Return: ret})
	}
	return out
}
