package postgres

import (
	"context"
	"net"
	"time"
)

// hangGuard dials connections that give up on a server that stops
// answering. lib/pq reacts to a cancelled context only by asking the server
// to cancel the query, so against a hung server (or a dropped network path)
// a query would wait forever and hold its request. Every write, which starts
// each exchange with the server, arms a read deadline; a reply that does not
// come within ioTimeout breaks the connection, the pool drops it, and the
// caller sees product.ErrUnavailable.
type hangGuard struct {
	dialer    net.Dialer
	ioTimeout time.Duration
}

func (g hangGuard) Dial(network, address string) (net.Conn, error) {
	return g.DialContext(context.Background(), network, address)
}

func (g hangGuard) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return g.DialContext(ctx, network, address)
}

func (g hangGuard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := g.dialer.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return &guardedConn{Conn: c, ioTimeout: g.ioTimeout}, nil
}

type guardedConn struct {
	net.Conn
	ioTimeout time.Duration
}

func (c *guardedConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.ioTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
