package netsim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// NodeID names an endpoint.
type NodeID = uint64

// Config is a link's behaviour.
type Config struct {
	// LatencyMinUs and LatencyMaxUs bound the one-way latency, drawn
	// uniformly between them.
	LatencyMinUs, LatencyMaxUs int64
	// TailPerMille of messages are slow: LatencyMaxUs plus up to TailUs.
	TailPerMille int
	TailUs       int64
	// LossPerMille of messages are dropped.
	LossPerMille int
	// DupPerMille of messages arrive twice.
	DupPerMille int
	// ReorderPerMille of messages get an extra delay of up to ReorderUs,
	// so later messages overtake them.
	ReorderPerMille int
	ReorderUs       int64
	// BandwidthBytesPerSec is the link's throughput: a message of n bytes
	// takes n over it on top of its latency (0: unlimited).
	BandwidthBytesPerSec int64
}

// Validate checks a link configuration.
func (c Config) Validate() error {
	switch {
	case c.LatencyMinUs < 0 || c.LatencyMaxUs < c.LatencyMinUs:
		return fmt.Errorf("netsim: latency range [%d, %d] us is invalid", c.LatencyMinUs, c.LatencyMaxUs)
	case !perMille(c.TailPerMille) || !perMille(c.LossPerMille) || !perMille(c.DupPerMille) || !perMille(c.ReorderPerMille):
		return errors.New("netsim: probabilities are per-mille, 0..1000")
	case c.TailUs < 0 || c.ReorderUs < 0:
		return errors.New("netsim: negative delay")
	case c.BandwidthBytesPerSec < 0:
		return errors.New("netsim: negative bandwidth")
	}
	return nil
}

func perMille(p int) bool { return p >= 0 && p <= 1000 }

// Network is the set of links between nodes and the partitions that cut
// some of them.
type Network struct {
	rng   *rand.Rand
	base  Config
	nodes []NodeID
	// cut holds directed links that carry nothing: (from, to).
	cut map[[2]NodeID]bool
	// links override base for some directed links.
	links map[[2]NodeID]Config
}

// New returns a fully connected network.
func New(base Config, rng *rand.Rand, nodes []NodeID) (*Network, error) {
	if err := base.Validate(); err != nil {
		return nil, err
	}
	return &Network{rng: rng, base: base, nodes: slices.Clone(nodes), cut: map[[2]NodeID]bool{}, links: map[[2]NodeID]Config{}}, nil
}

// AddNode connects a new node to every other.
func (n *Network) AddNode(id NodeID) {
	if !slices.Contains(n.nodes, id) {
		n.nodes = append(n.nodes, id)
	}
}

// SetLink gives one directed link its own behaviour (a slow or lossy link).
func (n *Network) SetLink(from, to NodeID, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	n.links[[2]NodeID{from, to}] = c
	return nil
}

// Connected reports whether from can reach to now.
func (n *Network) Connected(from, to NodeID) bool { return !n.cut[[2]NodeID{from, to}] }

// Send decides the fate of a message sent from one node to another at
// virtual time now: the times it arrives, none if it is lost or the link
// is cut, two if it is duplicated. Its size does not count (SendBytes).
func (n *Network) Send(from, to NodeID, now int64) []int64 { return n.SendBytes(from, to, now, 0) }

// SendBytes is Send for a message of size bytes, which arrives that many
// bytes over the link's bandwidth later than its latency says. Links are
// not queues: a large message delays no other (a snapshot has a stream
// of its own, as etcd's transport gives it).
func (n *Network) SendBytes(from, to NodeID, now, size int64) []int64 {
	if from == to {
		return []int64{now}
	}
	if n.cut[[2]NodeID{from, to}] {
		return nil
	}
	c := n.config(from, to)
	if n.chance(c.LossPerMille) {
		return nil
	}
	now += TransferUs(size, c.BandwidthBytesPerSec)
	out := []int64{now + n.latency(c)}
	if n.chance(c.DupPerMille) {
		out = append(out, now+n.latency(c))
	}
	return out
}

// config is the directed link's behaviour.
func (n *Network) config(from, to NodeID) Config {
	if c, ok := n.links[[2]NodeID{from, to}]; ok {
		return c
	}
	return n.base
}

// TransferUs is how long size bytes take at bytesPerSec (0: unlimited),
// rounded up to a whole microsecond.
func TransferUs(size, bytesPerSec int64) int64 {
	if size <= 0 || bytesPerSec <= 0 {
		return 0
	}
	// size*1e6 overflows past 9 TB; stores stay far below.
	return (size*1_000_000 + bytesPerSec - 1) / bytesPerSec
}

func (n *Network) latency(c Config) int64 {
	d := c.LatencyMinUs + n.rng.Int64N(c.LatencyMaxUs-c.LatencyMinUs+1)
	if n.chance(c.TailPerMille) && c.TailUs > 0 {
		d = c.LatencyMaxUs + n.rng.Int64N(c.TailUs+1)
	}
	if n.chance(c.ReorderPerMille) && c.ReorderUs > 0 {
		d += n.rng.Int64N(c.ReorderUs + 1)
	}
	return d
}

func (n *Network) chance(perMille int) bool {
	return perMille > 0 && n.rng.IntN(1000) < perMille
}

// Partition splits the nodes into groups that cannot reach each other
// (both ways). Nodes in no group are isolated from everyone.
func (n *Network) Partition(groups ...[]NodeID) {
	group := map[NodeID]int{}
	for i, g := range groups {
		for _, id := range g {
			group[id] = i + 1
		}
	}
	for _, a := range n.nodes {
		for _, b := range n.nodes {
			if a != b && (group[a] == 0 || group[a] != group[b]) {
				n.cut[[2]NodeID{a, b}] = true
			}
		}
	}
}

// Isolate cuts one node off from every other, both ways.
func (n *Network) Isolate(id NodeID) {
	for _, o := range n.nodes {
		if o != id {
			n.cut[[2]NodeID{id, o}] = true
			n.cut[[2]NodeID{o, id}] = true
		}
	}
}

// CutOneWay stops messages from one node to another, not back.
func (n *Network) CutOneWay(from, to NodeID) { n.cut[[2]NodeID{from, to}] = true }

// Heal restores every link and every link's behaviour.
func (n *Network) Heal() {
	clear(n.cut)
	clear(n.links)
}

// String describes the cut links, in a stable order, for traces.
func (n *Network) String() string {
	var cuts []string
	for _, a := range n.nodes {
		for _, b := range n.nodes {
			if n.cut[[2]NodeID{a, b}] {
				cuts = append(cuts, fmt.Sprintf("%x>%x", a, b))
			}
		}
	}
	if len(cuts) == 0 {
		return "connected"
	}
	return "cut " + strings.Join(cuts, " ")
}
