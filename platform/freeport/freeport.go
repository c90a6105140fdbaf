// Package freeport hands out loopback TCP addresses nothing listens on,
// for a process that another process (PostgreSQL, Redis, pms itself) must
// bind: tests, the load harness, the image benchmark.
//
// A port is picked below Linux's default ephemeral range (32768–60999),
// from which the kernel picks the local port of every outgoing
// connection: a port from that range, free when checked, was seen taken
// by some test's connection before the process it was for could bind it
// (CI, 2026-12-03). A port handed out is not handed out again by this
// process.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

// first and last bound the ports handed out, both included.
const (
	first = 20000
	last  = 32767
)

var given = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Port returns a port on 127.0.0.1 that nothing listened on when it was
// checked and that this process has not handed out before.
func Port() (int, error) {
	given.Lock()
	defer given.Unlock()
	for range 1000 {
		port := first + rand.IntN(last-first+1)
		if given.ports[port] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		given.ports[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("freeport: no free loopback port in %d–%d", first, last)
}

// Addr returns Port as a "127.0.0.1:port" address.
func Addr() (string, error) {
	port, err := Port()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}
