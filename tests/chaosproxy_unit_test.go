package tests

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// TestChaosProxy: the proxy forwards, and cuts by source IP: refused
// links reset their connections, dropped ones swallow what is sent, and
// healing restores both.
func TestChaosProxy(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	p, err := newChaosProxy("127.0.0.1:0", echo.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	const a, b = "127.0.0.21", "127.0.0.22"
	// tryDial returns nil when the connection fails: a refused link may
	// reset it before connect returns, as a refusing host would.
	tryDial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: time.Second}
		c, err := d.Dial("tcp", p.addr())
		if err != nil {
			return nil
		}
		return c
	}
	dial := func(src string) net.Conn {
		t.Helper()
		c := tryDial(src)
		if c == nil {
			t.Fatalf("cannot connect from %s through a healthy link", src)
		}
		return c
	}
	// roundTrip reports whether a line comes back within a short while.
	roundTrip := func(c net.Conn) bool {
		if c == nil {
			return false
		}
		c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return false
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && line == "ping\n"
	}
	ca, cb := dial(a), dial(b)
	if !roundTrip(ca) || !roundTrip(cb) {
		t.Fatal("no echo through the proxy")
	}
	p.cut(a, cutRefuse)
	if roundTrip(ca) {
		t.Error("a's connection still works after its link was refused")
	}
	if roundTrip(tryDial(a)) {
		t.Error("a new connection from a works while its link is refused")
	}
	if !roundTrip(cb) {
		t.Error("b's connection broke when a's link was cut")
	}
	p.heal(a)
	ca = dial(a)
	if !roundTrip(ca) {
		t.Error("a's link does not work after healing")
	}
	p.cut(a, cutDrop)
	if roundTrip(ca) {
		t.Error("a's connection still works after its link was dropped")
	}
	if roundTrip(tryDial(a)) {
		t.Error("a new connection from a works while its link drops")
	}
	p.heal(a)
	if !roundTrip(dial(a)) {
		t.Error("a's link does not work after healing a drop")
	}
	ca.SetDeadline(time.Now().Add(time.Second))
	if _, err := ca.Read(make([]byte, 1)); err == nil {
		t.Error("a connection that lost data while dropped stays open after healing")
	}
}
