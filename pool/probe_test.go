package pool_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/wire"
)

// fakeServer accepts one connection on a loopback port, reads the StartupMessage (sent
// on startup) and writes answer, then closes the connection when closes is set, else
// reads what else the client sends until it closes (sent on rest). A nil answer is none:
// a silent server, as a hung one is.
func fakeServer(t *testing.T, answer []byte, closes bool) (port int, startup, rest <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	st, after := make(chan []byte, 1), make(chan []byte, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(wait))
		var n [4]byte
		if _, err := io.ReadFull(nc, n[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint32(n[:])-4)
		if _, err := io.ReadFull(nc, msg); err != nil {
			return
		}
		st <- msg
		_, _ = nc.Write(answer)
		if closes {
			after <- nil
			return
		}
		b, _ := io.ReadAll(nc)
		after <- b
	}()
	return ln.Addr().(*net.TCPAddr).Port, st, after
}

// TestProbe: pool.Probe, /readyz's check of a database pgmux has no credentials for,
// takes a server as accepting logins when it asks for a password, logs the probe in, or
// refuses the probe's user (class 28), and not when it says it cannot take connections
// (57P03, 53300), lacks the database (3D000) or says nothing at all: a hung server's
// kernel still completes the TCP connection, which a bare connect took as ready.
func TestProbe(t *testing.T) {
	t.Parallel()
	auth := func(code int32) []byte { return wire.Auth(nil, code, []byte("SCRAM-SHA-256\x00\x00")) }
	fail := func(code, msg string) []byte { return pgerr.Fatal(code, "%s", msg).Append(nil) }
	loggedIn := wire.ReadyForQuery(wire.Auth(nil, wire.AuthOK, nil), 'I')
	for _, tc := range []struct {
		name      string
		answer    []byte // nil: none
		closes    bool   // the server closes the connection after answer
		wantErr   string // "": ready
		terminate bool   // the probe ends a full login with Terminate
		tls       bool   // server_tls_sslmode is on: the probe opens with an SSLRequest
	}{
		{name: "password request", answer: auth(wire.AuthSASL)},
		{name: "md5 request", answer: wire.Auth(nil, wire.AuthMD5, []byte{1, 2, 3, 4})},
		{name: "trusted", answer: loggedIn, terminate: true},
		{name: "no such role", answer: fail(pgerr.InvalidAuthorization, `role "pgmux_readyz" does not exist`)},
		{name: "no pg_hba.conf entry", answer: fail(pgerr.InvalidAuthorization, "no pg_hba.conf entry")},
		{name: "starting up", answer: fail(pgerr.CannotConnectNow, "the database system is starting up"), wantErr: "starting up"},
		{name: "too many clients", answer: fail(pgerr.TooManyConnections, "sorry, too many clients already"), wantErr: "too many clients"},
		{name: "no such database", answer: append(wire.Auth(nil, wire.AuthOK, nil), fail(pgerr.InvalidCatalogName, `database "x" does not exist`)...),
			wantErr: "does not exist"},
		{name: "hung", answer: nil, wantErr: "did not answer a startup message"},
		{name: "hung, TLS", answer: nil, tls: true, wantErr: "did not answer a startup message"},
		{name: "TLS refused, required", answer: []byte{'N'}, tls: true, wantErr: "server does not support TLS"},
		{name: "closes", closes: true, wantErr: "did not answer a startup message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			port, startup, rest := fakeServer(t, tc.answer, tc.closes)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			target := &pool.Target{Host: "127.0.0.1", Port: port, Database: "app", User: "pgmux_readyz"}
			if tc.tls {
				target.TLS, target.TLSRequired = &tls.Config{ServerName: "localhost"}, true
			}
			err := pool.Probe(ctx, target)
			if tc.wantErr == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.wantErr)
			}
			st := <-startup
			if tc.tls {
				require.Equal(t, []byte{0x04, 0xd2, 0x16, 0x2f}, st, "an SSLRequest")
			} else {
				require.Contains(t, string(st), "user\x00pgmux_readyz\x00database\x00app\x00")
			}
			select {
			case after := <-rest:
				if tc.terminate {
					require.Equal(t, []byte{'X', 0, 0, 0, 4}, after)
				} else {
					require.Empty(t, after, "nothing after the startup message: no password")
				}
			case <-time.After(wait):
				t.Fatal("the probe did not close its connection")
			}
		})
	}
}

// TestProbePostgreSQL: Probe against PostgreSQL itself: a role it asks a password of,
// one it trusts, a role it does not have, and a database it does not have.
func TestProbePostgreSQL(t *testing.T) {
	t.Parallel()
	pg := pgtest.Start(t)
	for _, tc := range []struct{ user, db, wantErr string }{
		{pgtest.ScramUser, pgtest.AppDB, ""},
		{pgtest.SuperUser, pgtest.AppDB, ""},
		{"pgmux_readyz", pgtest.AppDB, ""},
		{pgtest.SuperUser, "no_such_db", "3D000"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		err := pool.Probe(ctx, &pool.Target{Host: pg.Host, Port: pg.Port, Database: tc.db, User: tc.user})
		cancel()
		if tc.wantErr == "" {
			require.NoError(t, err, "%s@%s", tc.user, tc.db)
		} else {
			require.ErrorContains(t, err, tc.wantErr, "%s@%s", tc.user, tc.db)
		}
	}
}
