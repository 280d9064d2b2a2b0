package tcpproxy

import (
	"errors"
	"net"
	"slices"
	"testing"
)

// TestPick: endpoints of the best priority that are up are picked, in
// turn without weights, only those with weights when some have them.
func TestPick(t *testing.T) {
	tests := []struct {
		name      string
		endpoints []Endpoint
		down      []int
		picks     int
		want      []string // the addresses picked, in any order for weights
	}{
		{"in turn", []Endpoint{{Addr: "a"}, {Addr: "b"}, {Addr: "c"}}, nil, 4, []string{"a", "b", "c", "a"}},
		{"skips down", []Endpoint{{Addr: "a"}, {Addr: "b"}, {Addr: "c"}}, []int{1}, 3, []string{"a", "c", "a"}},
		{"best priority", []Endpoint{{Addr: "a", Priority: 2}, {Addr: "b", Priority: 1}, {Addr: "c", Priority: 1}}, nil, 3, []string{"b", "c", "b"}},
		{"next priority when best down", []Endpoint{{Addr: "a", Priority: 2}, {Addr: "b", Priority: 1}}, []int{1}, 2, []string{"a", "a"}},
		{"weights only", []Endpoint{{Addr: "a", Weight: 5}, {Addr: "b", Priority: 1}}, nil, 3, []string{"a", "a", "a"}},
		{"all down", []Endpoint{{Addr: "a"}}, []int{0}, 1, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Proxy{Endpoints: tt.endpoints, down: make([]bool, len(tt.endpoints))}
			for _, i := range tt.down {
				p.down[i] = true
			}
			var got []string
			for range tt.picks {
				i, ok := p.pick()
				if !ok {
					got = append(got, "")
					continue
				}
				got = append(got, tt.endpoints[i].Addr)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("picked %v, want %v", got, tt.want)
			}
		})
	}
}

// TestConnectFailsOver: an endpoint that refuses is marked down and the
// next is dialled; with all refusing, connect gives up after one dial each.
func TestConnectFailsOver(t *testing.T) {
	refused := errors.New("refused")
	var dialled []string
	p := &Proxy{
		Endpoints: []Endpoint{{Addr: "a"}, {Addr: "b"}, {Addr: "c"}},
		Dial: func(addr string) (net.Conn, error) {
			dialled = append(dialled, addr)
			if addr == "c" {
				c1, c2 := net.Pipe()
				c2.Close()
				return c1, nil
			}
			return nil, refused
		},
		down: make([]bool, 3),
	}
	if c := p.connect(); c == nil {
		t.Fatal("no connection although c answers")
	}
	// The turn moved on past b with a's pick.
	if !slices.Equal(dialled, []string{"a", "c"}) || !slices.Equal(p.down, []bool{true, false, false}) {
		t.Fatalf("dialled %v, down %v", dialled, p.down)
	}
	p.down[1], p.down[2] = true, true
	dialled = nil
	if c := p.connect(); c != nil || len(dialled) != 0 {
		t.Fatalf("with all down: conn %v, dialled %v", c, dialled)
	}
	p.down = []bool{false, false, false}
	p.Dial = func(addr string) (net.Conn, error) { dialled = append(dialled, addr); return nil, refused }
	if c := p.connect(); c != nil || len(dialled) != 3 {
		t.Fatalf("with all refusing: conn %v, dialled %v", c, dialled)
	}
}
