package tests

// The chaos suite's checkers must bite: hand-made histories that break
// etcd's guarantees are caught, and legal ones (with unknown outcomes)
// pass.

import (
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func TestChaosCheckers(t *testing.T) {
	put := func(c int, key, val string, call, ret, rev int64) *chaosOp {
		return &chaosOp{Client: c, Kind: opPut, Key: key, Value: val, Call: call, Return: ret, Rev: rev}
	}
	get := func(c int, key string, call, ret, rev int64, kvs ...kvSeen) *chaosOp {
		return &chaosOp{Client: c, Kind: opGet, Key: key, Call: call, Return: ret, Rev: rev, KVs: kvs}
	}
	unknown := func(op *chaosOp) *chaosOp { op.Out, op.Rev, op.Return = outUnknown, 0, 0; return op }
	cas := func(c int, key, val string, expect int64, call, ret, rev int64, ok bool, kvs ...kvSeen) *chaosOp {
		return &chaosOp{Client: c, Kind: opCAS, Key: key, Value: val, Expect: expect, Call: call, Return: ret, Rev: rev, Succeeded: ok, KVs: kvs}
	}
	cases := []struct {
		name string
		h    []*chaosOp
		want porcupine.CheckResult
	}{
		{"read your write", []*chaosOp{
			put(0, "k", "a", 0, 10, 2),
			get(1, "k", 20, 30, 2, kvSeen{"a", 2, 2, 1}),
		}, porcupine.Ok},
		{"stale read", []*chaosOp{
			put(0, "k", "a", 0, 10, 2),
			put(0, "k", "b", 11, 20, 3),
			get(1, "k", 30, 40, 3, kvSeen{"a", 2, 2, 1}),
		}, porcupine.Illegal},
		{"read of a lost write", []*chaosOp{
			put(0, "k", "a", 0, 10, 2),
			get(1, "k", 20, 30, 2),
		}, porcupine.Illegal},
		{"revision going back", []*chaosOp{
			put(0, "k", "a", 0, 10, 5),
			put(0, "k", "b", 20, 30, 4),
		}, porcupine.Illegal},
		{"wrong version", []*chaosOp{
			put(0, "k", "a", 0, 10, 2),
			put(0, "k", "b", 11, 20, 3),
			get(1, "k", 30, 40, 3, kvSeen{"b", 3, 2, 1}),
		}, porcupine.Illegal},
		{"unknown put seen later", []*chaosOp{
			put(0, "k", "a", 0, 10, 2),
			unknown(put(1, "k", "b", 5, 0, 0)),
			get(2, "k", 50, 60, 9, kvSeen{"b", 7, 2, 2}),
		}, porcupine.Ok},
		{"unknown put never seen, version counts it", []*chaosOp{
			put(0, "k", "a", 0, 10, 2),
			unknown(put(1, "k", "b", 11, 0, 0)),
			put(0, "k", "c", 20, 30, 8),
			get(2, "k", 50, 60, 9, kvSeen{"c", 8, 2, 3}),
		}, porcupine.Ok},
		{"unknown put never happened", []*chaosOp{
			put(0, "k", "a", 0, 10, 2),
			unknown(put(1, "k", "b", 11, 0, 0)),
			put(0, "k", "c", 20, 30, 8),
			get(2, "k", 50, 60, 9, kvSeen{"c", 8, 2, 2}),
		}, porcupine.Ok},
		{"cas", []*chaosOp{
			put(0, "k", "a", 0, 10, 2),
			cas(1, "k", "b", 2, 20, 30, 3, true),
			cas(2, "k", "c", 2, 40, 50, 3, false, kvSeen{"b", 3, 2, 2}),
		}, porcupine.Ok},
		{"cas that should have failed", []*chaosOp{
			put(0, "k", "a", 0, 10, 2),
			put(0, "k", "b", 11, 15, 3),
			cas(1, "k", "c", 2, 20, 30, 4, true),
		}, porcupine.Illegal},
		{"cas that should have held", []*chaosOp{
			put(0, "k", "a", 0, 10, 2),
			cas(1, "k", "c", 2, 20, 30, 2, false, kvSeen{"a", 2, 2, 1}),
		}, porcupine.Illegal},
		{"a failed cas on a key written by an unknown put", []*chaosOp{
			unknown(put(1, "k", "b", 0, 0, 0)),
			cas(1, "k", "c", 0, 20, 30, 4, false, kvSeen{"b", 3, 3, 1}),
		}, porcupine.Ok},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			got := checkLinearizable(tc.h, 10*time.Second, "")
			if got.result != tc.want {
				t.Fatalf("got %s, want %s: %v", got.result, tc.want, got.illegal)
			}
		})
	}

	// Durability.
	h := []*chaosOp{put(0, "k", "a", 0, 10, 2), put(0, "k", "b", 11, 20, 3), unknown(put(0, "k", "c", 21, 0, 0))}
	for _, tc := range []struct {
		final map[string]kvSeen
		bad   bool
	}{
		{map[string]kvSeen{"k": {"b", 3, 2, 2}}, false},
		{map[string]kvSeen{"k": {"c", 9, 2, 3}}, false},
		{map[string]kvSeen{"k": {"a", 2, 2, 1}}, true},
		{map[string]kvSeen{}, true},
		{map[string]kvSeen{"k": {"zz", 9, 2, 3}}, true},
	} {
		if fails := checkDurability(h, tc.final); (len(fails) > 0) != tc.bad {
			t.Errorf("durability of %v: %v", tc.final, fails)
		}
	}

	// Watches: a gap, a duplicate, an event out of order are all caught.
	hw := []*chaosOp{put(0, "k", "a", 0, 10, 2), put(0, "k", "b", 11, 20, 3), put(0, "j", "c", 21, 30, 4)}
	final := map[string]kvSeen{"k": {"b", 3, 2, 2}, "j": {"c", 4, 4, 1}}
	a, b, c := watchEvent{"k", "a", 2, 2, 1, false}, watchEvent{"k", "b", 3, 2, 2, false}, watchEvent{"j", "c", 4, 4, 1, false}
	for _, tc := range []struct {
		evs []watchEvent
		bad bool
	}{
		{[]watchEvent{a, b, c}, false},
		{[]watchEvent{a, c}, true},
		{[]watchEvent{a, b, b, c}, true},
		{[]watchEvent{b, a, c}, true},
		{[]watchEvent{a, b}, true},
	} {
		if fails := checkWatch("w", tc.evs, 1, 4, hw, final); (len(fails) > 0) != tc.bad {
			t.Errorf("watch %v: %v", tc.evs, fails)
		}
	}
}
