package sim

import (
	"fmt"
	"strings"
)

type opKind uint8

const (
	opPut opKind = iota + 1
	opGet
	opGetSerializable
	opDelete
	opCAS
	opMultiPut
	opRangeGroup
)

var opNames = map[opKind]string{opPut: "put", opGet: "get", opGetSerializable: "sget", opDelete: "del", opCAS: "cas", opMultiPut: "mput", opRangeGroup: "range"}

// kv is a key's state as a read saw it.
type kv struct {
	Key, Value           string
	Mod, Create, Version int64
}

// Op is one client operation in the history: what was asked, when, and
// what came back. Return is -1 while the outcome is unknown (the client
// timed out, or got an error that does not say whether the write took).
type Op struct {
	Client int
	Kind   opKind
	Group  int
	Key    string
	Keys   []string // multi-key ops
	Value  string
	// ExpectMod is a compare-and-swap's expected mod revision.
	ExpectMod int64
	Member    int
	Call      int64
	Return    int64

	// Outputs.
	Unknown   bool
	Failed    bool // a definite failure with no effect
	Rev       int64
	Succeeded bool
	Deleted   int64
	KVs       []kv
}

func (o *Op) isWrite() bool {
	switch o.Kind {
	case opPut, opDelete, opCAS, opMultiPut:
		return true
	}
	return false
}

func (o *Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "c%d %s", o.Client, opNames[o.Kind])
	switch o.Kind {
	case opPut:
		fmt.Fprintf(&b, " %s=%s", o.Key, o.Value)
	case opCAS:
		fmt.Fprintf(&b, " %s=%s if mod=%d", o.Key, o.Value, o.ExpectMod)
	case opMultiPut:
		fmt.Fprintf(&b, " %s=%s", strings.Join(o.Keys, ","), o.Value)
	case opRangeGroup:
		fmt.Fprintf(&b, " group %d", o.Group)
	default:
		fmt.Fprintf(&b, " %s", o.Key)
	}
	fmt.Fprintf(&b, " @m%d [%d,", o.Member+1, o.Call)
	if o.Unknown {
		b.WriteString("?] unknown")
		return b.String()
	}
	fmt.Fprintf(&b, "%d] rev %d", o.Return, o.Rev)
	if o.Failed {
		b.WriteString(" failed")
	}
	if o.Kind == opCAS {
		fmt.Fprintf(&b, " ok=%v", o.Succeeded)
	}
	if o.Kind == opDelete {
		fmt.Fprintf(&b, " deleted %d", o.Deleted)
	}
	for _, k := range o.KVs {
		fmt.Fprintf(&b, " {%s=%s m%d c%d v%d}", k.Key, k.Value, k.Mod, k.Create, k.Version)
	}
	return b.String()
}
