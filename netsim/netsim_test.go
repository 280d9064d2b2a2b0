package netsim

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestSameSeedSameFates(t *testing.T) {
	run := func() [][]int64 {
		n, err := New(Config{LatencyMinUs: 100, LatencyMaxUs: 900, LossPerMille: 100, DupPerMille: 50, ReorderPerMille: 100, ReorderUs: 5000, TailPerMille: 10, TailUs: 50000}, rand.New(rand.NewPCG(1, 2)), []NodeID{1, 2, 3})
		if err != nil {
			t.Fatal(err)
		}
		var out [][]int64
		for i := int64(0); i < 1000; i++ {
			out = append(out, n.Send(NodeID(1+i%3), NodeID(1+(i+1)%3), i*10))
		}
		return out
	}
	if !reflect.DeepEqual(run(), run()) {
		t.Fatal("same seed, different fates")
	}
}

func TestPartitions(t *testing.T) {
	n, _ := New(Config{LatencyMinUs: 1, LatencyMaxUs: 1}, rand.New(rand.NewPCG(1, 1)), []NodeID{1, 2, 3})
	n.Partition([]NodeID{1}, []NodeID{2, 3})
	tests := []struct {
		from, to NodeID
		ok       bool
	}{{1, 2, false}, {2, 1, false}, {2, 3, true}, {3, 2, true}, {1, 1, true}}
	for _, tt := range tests {
		if got := len(n.Send(tt.from, tt.to, 0)) > 0; got != tt.ok {
			t.Errorf("%d->%d delivered %v, want %v", tt.from, tt.to, got, tt.ok)
		}
	}
	n.Heal()
	n.CutOneWay(1, 2)
	if n.Connected(1, 2) || !n.Connected(2, 1) {
		t.Fatal("one-way cut should cut one direction only")
	}
	n.Heal()
	n.Isolate(3)
	if n.Connected(3, 1) || n.Connected(2, 3) || !n.Connected(1, 2) {
		t.Fatalf("isolate: %s", n)
	}
	if got := n.String(); got != "cut 1>3 2>3 3>1 3>2" {
		t.Fatalf("String: %s", got)
	}
}

func TestLossAndDuplicationRates(t *testing.T) {
	n, _ := New(Config{LatencyMinUs: 10, LatencyMaxUs: 20, LossPerMille: 200, DupPerMille: 100}, rand.New(rand.NewPCG(7, 7)), []NodeID{1, 2})
	lost, dup := 0, 0
	for i := 0; i < 10000; i++ {
		switch len(n.Send(1, 2, 0)) {
		case 0:
			lost++
		case 2:
			dup++
		}
	}
	if lost < 1700 || lost > 2300 || dup < 600 || dup > 1000 {
		t.Fatalf("lost %d dup %d of 10000", lost, dup)
	}
}

// TestBandwidth: a message's size over its link's bandwidth adds to its
// latency, on every copy, and a link's own config has its own bandwidth.
func TestBandwidth(t *testing.T) {
	n, err := New(Config{LatencyMinUs: 10, LatencyMaxUs: 10, DupPerMille: 1000, BandwidthBytesPerSec: 1_000_000}, rand.New(rand.NewPCG(3, 3)), []NodeID{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SetLink(1, 3, Config{LatencyMinUs: 10, LatencyMaxUs: 10, BandwidthBytesPerSec: 0}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		from, to NodeID
		size     int64
		want     []int64
	}{
		{"empty", 1, 2, 0, []int64{110, 110}},
		{"one byte rounds up to a microsecond", 1, 2, 1, []int64{111, 111}},
		{"1 MB at 1 MB/s", 1, 2, 1_000_000, []int64{1_000_110, 1_000_110}},
		{"unlimited link", 1, 3, 1 << 40, []int64{110}},
		{"to itself", 2, 2, 1_000_000, []int64{100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := n.SendBytes(tt.from, tt.to, 100, tt.size); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("arrives at %v, want %v", got, tt.want)
			}
		})
	}
	if err := (Config{BandwidthBytesPerSec: -1}).Validate(); err == nil {
		t.Fatal("a negative bandwidth is valid")
	}
}

func TestTransferUs(t *testing.T) {
	tests := []struct{ size, bw, want int64 }{
		{0, 100, 0}, {-5, 100, 0}, {5, 0, 0}, {1, 1_000_000, 1}, {1_000_001, 1_000_000, 1_000_001},
		{8 << 30, 12_500_000, 687_194_768}, // 8 GiB over 100 Mbit/s: 11.5 minutes
	}
	for _, tt := range tests {
		if got := TransferUs(tt.size, tt.bw); got != tt.want {
			t.Errorf("TransferUs(%d, %d) = %d, want %d", tt.size, tt.bw, got, tt.want)
		}
	}
}
