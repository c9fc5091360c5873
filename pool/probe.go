package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/wire"
)

// Probe checks, without credentials, that the server t names accepts logins now: it
// connects (with TLS as t says), sends a StartupMessage for t.User and t.Database and
// reads the answer, within ctx. The server is taken to accept logins when it
//
//   - asks for a password (any authentication request but AuthenticationOk): the
//     postmaster took the connection and a backend matched a pg_hba.conf method;
//   - logs the probe in (AuthenticationOk, then ReadyForQuery; pg_hba.conf trusts it);
//   - refuses the probe's user with an error of class 28 (invalid authorization: no
//     pg_hba.conf entry for it, no such role), which says nothing of the clients' users.
//
// Any other error is returned: the server starting up, shutting down or in recovery
// (57P03), out of connections (53300), the database missing (3D000). So is no answer
// within ctx: a hung server's kernel still completes TCP connections, and only the
// startup exchange shows that nothing answers them. Probe sends no password: it closes
// the connection at the password request (PostgreSQL logs nothing for a client that
// leaves there), and sends Terminate after a full login.
func Probe(ctx context.Context, t *Target) error {
	network, addr := t.Network()
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("connect to server %s: %w", addr, err)
	}
	defer raw.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	silent := func(err error) error {
		return fmt.Errorf("server %s took the connection but did not answer a startup message: %w", addr, err)
	}
	nc := raw
	if t.TLS != nil && network != "unix" {
		if nc, err = startTLS(raw, t); err != nil {
			if errors.Is(err, ErrServerLogin) {
				return err // TLS refused or failed: a client's login would fail too
			}
			return silent(err) // no answer to the SSLRequest
		}
	}
	if _, err := nc.Write(startupMessage(t)); err != nil {
		return silent(err)
	}
	rd := wire.NewReader(nc)
	for {
		typ, n, err := rd.Next()
		if err == nil {
			var m []byte
			if m, err = rd.Message(n); err == nil {
				if done, err := probeAnswer(nc, typ, wire.Body(m)); done {
					return err
				}
				continue
			}
		}
		return silent(err)
	}
}

// probeAnswer judges one message of the server's answer to Probe's StartupMessage: done
// when it settles whether the server accepts logins (err nil when it does).
func probeAnswer(nc net.Conn, typ byte, body []byte) (done bool, err error) {
	switch typ {
	case 'R':
		code, _, err := wire.Int32(body)
		switch {
		case err != nil:
			return true, fmt.Errorf("%w: malformed authentication request", ErrServerLogin)
		case code != wire.AuthOK:
			return true, nil // a password request
		}
		return false, nil // trusted: wait for ReadyForQuery
	case 'E':
		pe, err := pgerr.Parse(body)
		switch {
		case err != nil:
			return true, fmt.Errorf("%w: malformed error response", ErrServerLogin)
		case strings.HasPrefix(pe.Code, "28"):
			return true, nil
		}
		return true, fmt.Errorf("%w: %w", ErrServerLogin, pe)
	case 'Z':
		_, _ = nc.Write(terminate)
		return true, nil
	case 'S', 'K', 'N', 'v':
		return false, nil
	}
	return true, fmt.Errorf("%w: unexpected message %q answering a startup message", ErrServerLogin, typ)
}

// terminate is the Terminate message: a connection closed cleanly, not "unexpected EOF"
// in the server's log.
var terminate = []byte{'X', 0, 0, 0, 4}
