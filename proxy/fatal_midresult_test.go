package proxy_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/proxy"
)

// streamClient is a raw protocol client that reads a long result message by message, so
// that a test sees exactly what pgmux wrote: whole messages, or a torn one.
type streamClient struct {
	nc net.Conn
	rd *bufio.Reader
}

// errTorn is a message cut short by the end of the stream.
var errTorn = errors.New("the stream ended inside a message")

// next reads one message: its type and body; io.EOF when the stream ended between two.
func (c *streamClient) next() (byte, []byte, error) {
	var h [5]byte
	if n, err := io.ReadFull(c.rd, h[:]); err != nil {
		if n == 0 && err == io.EOF {
			return 0, nil, io.EOF
		}
		return 0, nil, fmt.Errorf("%w: header (%d of 5 bytes): %v", errTorn, n, err)
	}
	l := int(binary.BigEndian.Uint32(h[1:]))
	if l < 4 || l > 1<<24 {
		return 0, nil, fmt.Errorf("message %q with length %d: not a message boundary", h[0], l)
	}
	body := make([]byte, l-4)
	if n, err := io.ReadFull(c.rd, body); err != nil {
		return 0, nil, fmt.Errorf("%w: %q body (%d of %d bytes): %v", errTorn, h[0], n, l-4, err)
	}
	return h[0], body, nil
}

func (c *streamClient) send(t *testing.T, m pgproto3.FrontendMessage) {
	t.Helper()
	b, err := m.Encode(nil)
	require.NoError(t, err)
	_, err = c.nc.Write(b)
	require.NoError(t, err)
}

func dialStream(t *testing.T, port int, db string) *streamClient {
	t.Helper()
	nc, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	c := &streamClient{nc: nc, rd: bufio.NewReader(nc)}
	c.send(t, &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "app", "database": db}})
	require.NoError(t, nc.SetReadDeadline(time.Now().Add(30*time.Second)))
	for {
		typ, body, err := c.next()
		require.NoError(t, err, "login")
		require.NotEqual(t, byte('E'), typ, "login: %q", body)
		if typ == 'Z' {
			return c
		}
	}
}

// startLong sends a query whose result is far longer than any buffer on the way and
// returns once its first rows came through: pgmux is then in the middle of relaying it.
// It returns early, leaving it unread for endsWithFatal, at an ErrorResponse: a
// transaction_timeout of 1 s can pass before 2,000 rows arrive on a loaded machine (CI),
// and its FATAL must then be whole and last all the same.
func (c *streamClient) startLong(t *testing.T) {
	t.Helper()
	// 3e6 rows of some 60 bytes, with a pause of 10 ms every 10,000 rows: at least 3 s.
	c.send(t, &pgproto3.Query{String: "SELECT g, repeat('x', 40), CASE WHEN g % 10000 = 0 THEN pg_sleep(0.01) END " +
		"FROM generate_series(1, 3000000) g"})
	for rows := 0; rows < 2000; {
		if b, err := c.rd.Peek(1); err == nil && b[0] == 'E' {
			return
		}
		typ, _, err := c.next()
		require.NoError(t, err, "the long result's first rows")
		require.NotEqual(t, byte('E'), typ)
		if typ == 'D' {
			rows++
		}
	}
}

// endsWithFatal reads on until the connection ends, requiring whole messages all the way
// and a FATAL with code as the last one.
func (c *streamClient) endsWithFatal(t *testing.T, code string) {
	t.Helper()
	require.NoError(t, c.nc.SetReadDeadline(time.Now().Add(60*time.Second)))
	var fatal *pgproto3.ErrorResponse
	rows, last := 0, byte(0)
	for {
		typ, body, err := c.next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err, "after %d more rows (last message %q)", rows, last)
		require.Nil(t, fatal, "%q after the FATAL", typ)
		last = typ
		switch typ {
		case 'D':
			rows++
		case 'E':
			fatal = &pgproto3.ErrorResponse{}
			require.NoError(t, fatal.Decode(body))
			require.Equal(t, "FATAL", fatal.Severity, "%s %s", fatal.Code, fatal.Message)
			require.Equal(t, code, fatal.Code, fatal.Message)
		}
	}
	require.NotNil(t, fatal, "the client was closed without its FATAL (last message %q, %d rows after the start)", last, rows)
}

// TestFatalMidResult: a client in the middle of a long result that pgmux ends — the
// console's KILL and KILL_CLIENT, a RELOAD removing its database, a shutdown,
// transaction_timeout, a protocol violation of its own — gets whole messages and then the
// FATAL, never a torn message or a close without a word.
func TestFatalMidResult(t *testing.T) {
	// The rule under test is where the FATAL lands, not how long pgmux waits for a
	// client that stops reading: on a loaded machine (CI's non-race pass, load 10) the
	// test's reader, in this process, was once starved past killWait and the client
	// was closed untold, as one that does not read is meant to be.
	t.Cleanup(proxy.SetKillWaitForTest(5*time.Second, 20*time.Second))
	pg := pgtest.Start(t)
	cases := []struct {
		name  string
		extra map[string]string
		code  string
		end   func(t *testing.T, h *harness, c *streamClient)
	}{
		{"KILL", nil, "57P01", func(t *testing.T, h *harness, _ *streamClient) {
			_, err := h.admin(t).Exec(context.Background(), "KILL app2")
			require.NoError(t, err)
		}},
		{"KILL_CLIENT", nil, "57P01", func(t *testing.T, h *harness, _ *streamClient) {
			adm := h.admin(t)
			_, rows := show(t, adm, "SHOW CLIENTS")
			r := rowWhere(rows, "database", "app2")
			require.NotNil(t, r)
			_, err := adm.Exec(context.Background(), fmt.Sprintf("KILL_CLIENT %v", r["id"]))
			require.NoError(t, err)
		}},
		{"RELOAD removing the database", nil, "57P01", func(t *testing.T, h *harness, _ *streamClient) {
			_, err := h.admin(t).Exec(context.Background(), "RELOAD")
			require.NoError(t, err)
		}},
		{"immediate shutdown", nil, "57P01", func(t *testing.T, h *harness, _ *streamClient) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			go func() { _ = h.srv.Stop(ctx, proxy.ShutdownImmediate) }()
		}},
		{"transaction_timeout", map[string]string{"transaction_timeout": "1"}, "25P04", func(*testing.T, *harness, *streamClient) {}},
		{"protocol violation", nil, "08P01", func(t *testing.T, _ *harness, c *streamClient) {
			_, err := c.nc.Write([]byte{'!', 0, 0, 0, 4})
			require.NoError(t, err)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := startProxy(t, harnessOpts{
				extra: tc.extra,
				dbs:   map[string]string{"app2": fmt.Sprintf("host=%s port=%d dbname=%s", pg.Host, pg.Port, pgtest.AppDB)},
				reload: func(h *harness) error {
					next := h.srv.Config().Clone()
					delete(next.Databases, "app2")
					return h.srv.Reload(next, nil)
				},
			})
			c := dialStream(t, h.port, "app2")
			c.startLong(t)
			tc.end(t, h, c)
			c.endsWithFatal(t, tc.code)
		})
	}
}
