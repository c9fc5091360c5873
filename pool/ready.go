package pool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// ErrPaused is Check's answer for a pool held by Pause or Hold (PAUSE, SUSPEND, KILL).
var ErrPaused = errors.New("pool is paused")

// servedFresh is how recently a connection must have come back from a client for Check
// to take it as proof that the server serves, when every connection is leased.
const servedFresh = time.Second

// Check reports whether the pool can serve a client now, for a readiness probe; ctx
// bounds it. It proves it with the server itself, as cheaply as it can:
//
//   - held by Pause or Hold, or closed: not ready, without asking the server;
//   - while server_login_retry holds new connections back after a failed connect, it
//     does not repeat that failure: a bare connect (as the waiters' probe does), then a
//     real login; one that succeeds ends the back-off and lets queued clients dial;
//   - an idle connection runs server_check_query (";" when it is disabled) whatever
//     server_check_delay says, and goes back to the pool when it answers; one that does
//     not answer within ctx is closed, as a failed check closes it for a client;
//   - every connection leased: a connection a client gave back within servedFresh is
//     proof enough; otherwise a new connection is logged in and kept in the pool, when
//     the pool's size and shared limits leave room for it. Check waits for that login
//     until ctx is done, not for server_connect_timeout: the login goes on without it
//     (checkLogin). Without room the server is only asked to answer (checkConnect).
func (p *Pool) Check(ctx context.Context) error {
	for {
		p.mu.Lock()
		switch {
		case p.closed:
			p.mu.Unlock()
			return ErrClosed
		case p.paused:
			p.mu.Unlock()
			return ErrPaused
		}
		if p.backingOffLocked() {
			network, addr := p.health.network, p.health.addr
			p.mu.Unlock()
			if network != "" {
				// As the waiters' probe does: nothing sent, nothing in the server's log.
				var d net.Dialer
				nc, err := d.DialContext(ctx, network, addr)
				if err != nil {
					return fmt.Errorf("connect to server %s: %w", addr, err)
				}
				_ = nc.Close()
			}
			return p.checkLogin(ctx)
		}
		c := p.popIdle()
		if c == nil {
			fresh := !p.servedAt.IsZero() && time.Since(p.servedAt) < servedFresh && len(p.all) > 0
			p.mu.Unlock()
			if fresh {
				return nil
			}
			return p.checkLogin(ctx)
		}
		p.mu.Unlock()
		if err, again := p.checkIdle(ctx, c); !again {
			return err
		}
	}
}

// checkIdle runs the check query on c, taken off the idle list; again means c turned out
// broken before it could answer, and another connection (or a login) should be tried.
func (p *Pool) checkIdle(ctx context.Context, c *Conn) (err error, again bool) {
	if c.idleBroken(time.Now()) {
		return nil, true // left to its reader, which removes it with the server's reason
	}
	p.mu.Lock()
	q := p.opts.CheckQuery
	p.mu.Unlock()
	if q == "" {
		q = ";"
	}
	c.state.Store(int32(StateTested))
	done := make(chan error, 1)
	if err := c.startInternal(q, func(err error) { done <- err }); err != nil {
		p.retire(c, fmt.Errorf("%w: %w", errCheck, err))
		return nil, true
	}
	select {
	case err := <-done:
		if err != nil {
			p.retire(c, fmt.Errorf("%w: %w", errCheck, err))
			return fmt.Errorf("server_check_query failed: %w", err), false
		}
		p.putIdle(c)
		return nil, false
	case <-ctx.Done():
		p.retire(c, fmt.Errorf("%w: no answer within the readiness probe's time limit", errCheck))
		return fmt.Errorf("the server did not answer %q on an idle connection: %w", q, context.Cause(ctx)), false
	case <-c.closed:
		return nil, true
	}
}

// checkLogin logs a new connection in (checkLoginNow) and waits for it until ctx is done.
// The login's own bound is server_connect_timeout (ctx when that is 0), which a probe's
// limit does not shorten: its connection is the pool's, for the next client, and a
// server slower than the probe is not a failed connect that server_login_retry would
// hold clients back after. At ctx's end the login goes on without the check, on its own
// goroutine, and ends as a client's dial does: within server_connect_timeout, its
// connection put in the pool (closed if the pool was closed meanwhile), or its failure
// counted and logged as the pool's.
func (p *Pool) checkLogin(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- p.checkLoginNow(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no server login within the check's time limit: %w", context.Cause(ctx))
	}
}

// checkLoginNow logs a new connection in, into the pool (an idle connection for the next
// client), when the pool's size and its shared limits leave room for it. A success ends a
// back-off after a failed connect and wakes the clients queued behind it. Without room it
// logs nothing in (checkConnect): a login beyond max_db_connections, which the server's
// max_connections may be sized to, could take the slot of a client's login.
func (p *Pool) checkLoginNow(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	if p.paused {
		p.mu.Unlock()
		return ErrPaused
	}
	if p.total < p.opts.Size {
		c, _, err := p.dialLocked(ctx, time.Time{}, nil)
		if err != nil {
			return err
		}
		if c != nil {
			p.loginWorked()
			p.putIdle(c)
			return nil
		}
		// A shared limit (max_db_connections, max_user_connections) refused the slot.
	} else {
		p.mu.Unlock()
	}
	return p.checkConnect(ctx)
}

// checkConnect is Check's proof for a pool with no room for a login and no connection
// given back lately (its clients hold them all): the server where one of its connections
// is (else its target's host) answers an SSLRequest. PostgreSQL answers it before it gives
// the connection a slot (a login takes one), and logs nothing for a client that leaves
// after a no, or after the handshake that follows a yes (tlsGoodbye); a hung server whose
// kernel still completes connections does not answer. A cluster's pool holding no connection has no one host to ask.
func (p *Pool) checkConnect(ctx context.Context) error {
	p.mu.Lock()
	var network, addr string
	for c := range p.all {
		if network, addr = c.network, c.addr; addr != "" {
			break
		}
	}
	target := p.opts.Target
	p.mu.Unlock()
	if addr == "" {
		t := target()
		if t.Cluster != nil {
			return errors.New("no room for a server login within pool_size, max_db_connections and max_user_connections")
		}
		network, addr = t.Network()
	}
	return sslAnswer(ctx, network, addr)
}

// sslAnswer connects to addr and sends an SSLRequest, and returns nil once the server has
// answered it, whatever the answer.
func sslAnswer(ctx context.Context, network, addr string) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("connect to server %s: %w", addr, err)
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var ans [1]byte
	if _, err = nc.Write(sslRequest); err == nil {
		_, err = nc.Read(ans[:])
	}
	if err != nil && ctx.Err() != nil {
		err = context.Cause(ctx) // the deadline set by stop's func, not a network failure
	}
	if err != nil {
		return fmt.Errorf("server %s took the connection but did not answer an SSLRequest: %w", addr, err)
	}
	if ans[0] == 'S' {
		tlsGoodbye(ctx, nc)
	}
	return nil
}

// goodbyeLimit bounds tlsGoodbye.
const goodbyeLimit = 2 * time.Second

// tlsGoodbye ends a connection whose server said 'S' to an SSLRequest without a line in
// its log. Closed there, the server logs "could not accept SSL connection: EOF
// detected" (ssl = on: most managed servers); after a handshake and a close_notify it
// reads the end of the connection where a startup packet would be, which it does not
// log. The certificate is not checked: nothing is sent through the session. Failures
// change nothing (the answer was the proof).
func tlsGoodbye(ctx context.Context, nc net.Conn) {
	_ = nc.SetDeadline(time.Now().Add(goodbyeLimit))
	if ctx.Err() != nil {
		return // ctx's deadline, set before this one, is not to be lengthened
	}
	tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
	if tc.HandshakeContext(ctx) != nil || tc.CloseWrite() != nil {
		return
	}
	// Until the server closes: the session tickets of TLS 1.3 left unread would make the
	// close a reset, which the server logs.
	_, _ = io.Copy(io.Discard, tc)
}

// loginWorked ends a back-off after a failed connect once a login has worked again, and
// wakes the clients queued behind it.
func (p *Pool) loginWorked() {
	p.mu.Lock()
	was := !p.lastFail.IsZero()
	p.lastFail = time.Time{}
	p.mu.Unlock()
	if was {
		p.wakeWaiters()
	}
}

// ConnectFailure returns the last failed connect or login while the pool's connects keep
// failing (none has worked since), else nil: a client that waited in vain for a server
// is told the server cannot be reached rather than that the pool stayed busy.
func (p *Pool) ConnectFailure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.health.failing || p.health.lastMsg == "" || p.paused {
		return nil
	}
	return errors.New(p.health.lastMsg)
}
