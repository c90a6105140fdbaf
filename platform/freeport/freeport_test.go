package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPortIsFreeBelowTheEphemeralRangeAndNotRepeated(t *testing.T) {
	seen := map[int]bool{}
	for range 200 {
		port, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		if port < first || port > last {
			t.Fatalf("port %d outside %d–%d", port, first, last)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("port %d handed out but not bindable: %v", port, err)
		}
		ln.Close()
	}
}

func TestPortSkipsATakenPort(t *testing.T) {
	// Listen on the first 500 ports of the range: none of them may be
	// handed out.
	held := map[int]net.Listener{}
	for port := first; port < first+500; port++ {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			held[port] = ln
		}
	}
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	for range 500 {
		port, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := held[port]; ok {
			t.Fatalf("port %d is listened on but was handed out", port)
		}
	}
}
