package proxy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/proxy"
)

// killManyClients is how many clients TestKillManyStalled ends at once: at killWait
// (200 ms) each, ending them one after another takes 6 s.
const killManyClients = 40

// TestKillManyStalled: KILL, a RELOAD removing the database and an immediate shutdown
// end many clients that stopped reading in the middle of a long result all at once, as
// PgBouncer does, not one after another: each relay is blocked on its client's full
// socket, so each client is closed after killWait, and the whole takes about that long,
// not killWait times the clients. Every client's connection ends, with whole messages
// and the FATAL, or closed untold (it did not read); no server is left behind.
func TestKillManyStalled(t *testing.T) {
	pg := pgtest.Start(t)
	cases := []struct {
		name string
		end  func(t *testing.T, h *harness)
	}{
		{"KILL", func(t *testing.T, h *harness) {
			_, err := h.admin(t).Exec(context.Background(), "KILL app2")
			require.NoError(t, err)
		}},
		{"RELOAD removing the database", func(t *testing.T, h *harness) {
			_, err := h.admin(t).Exec(context.Background(), "RELOAD")
			require.NoError(t, err)
		}},
		{"immediate shutdown", func(t *testing.T, h *harness) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_ = h.srv.Stop(ctx, proxy.ShutdownImmediate)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := startProxy(t, harnessOpts{
				extra: map[string]string{"default_pool_size": fmt.Sprint(killManyClients + 5)},
				dbs:   map[string]string{"app2": fmt.Sprintf("host=%s port=%d dbname=%s", pg.Host, pg.Port, pgtest.AppDB)},
				reload: func(h *harness) error {
					next := h.srv.Config().Clone()
					delete(next.Databases, "app2")
					return h.srv.Reload(next, nil)
				},
			})
			adm := h.admin(t) // before the end: a shutdown closes the listener
			clients := make([]*streamClient, killManyClients)
			for i := range clients {
				clients[i] = dialStream(t, h.port, "app2")
				clients[i].startStalled(t)
			}
			awaitStalled(t, h.srv, "app2")

			start := time.Now()
			tc.end(t, h)
			awaitGone(t, h.srv, "app2") // a reload ends the clients aside: it does not wait
			took := time.Since(start)
			t.Logf("%d stalled clients ended in %v", len(clients), took)
			// killWait is 200 ms, killMax 1 s: one after another, 40 clients take 8 s;
			// all at once about 210 ms (3 s leaves room for a loaded machine).
			require.Less(t, took, 3*time.Second, "the clients were ended one after another")
			ended := make(chan error, len(clients))
			for _, c := range clients {
				go func() { ended <- c.endsWithFatalOrClose() }()
			}
			for range clients {
				require.NoError(t, <-ended)
			}

			require.Eventually(t, func() bool {
				_, _, all := proxy.LoopReadServers(h.srv)
				return all == 0
			}, 10*time.Second, 20*time.Millisecond, "server connections left after the clients were ended")
			if tc.name == "immediate shutdown" {
				return // no console to ask
			}
			_, rows := show(t, adm, "SHOW SERVERS")
			require.Nil(t, rowWhere(rows, "database", "app2"), "SHOW SERVERS: %v", rows)
			_, rows = show(t, adm, "SHOW POOLS")
			if r := rowWhere(rows, "database", "app2"); r != nil {
				require.Zero(t, num(t, r, "cl_active"), "SHOW POOLS: %v", r)
				require.Zero(t, num(t, r, "sv_active"), "SHOW POOLS: %v", r)
			}
		})
	}
}

// startStalled sends a query whose result is far longer than the socket buffers on the
// way, reads its first rows and then stops reading.
func (c *streamClient) startStalled(t *testing.T) {
	t.Helper()
	// 1e6 rows of some 110 bytes, produced as the sockets take them (a nested loop over
	// two small series, not one large series a function scan would store first).
	c.send(t, &pgproto3.Query{String: "SELECT a, b, repeat('x', 100) FROM generate_series(1, 1000) a, generate_series(1, 1000) b"})
	for rows := 0; rows < 100; {
		typ, body, err := c.next()
		require.NoError(t, err, "the long result's first rows")
		require.NotEqual(t, byte('E'), typ, "%q", body)
		if typ == 'D' {
			rows++
		}
	}
}

// awaitStalled waits until pgmux has sent db's clients nothing for 200 ms: every relay is
// blocked on a client's full socket.
func awaitStalled(t *testing.T, srv *proxy.Server, db string) {
	t.Helper()
	last, since := proxy.SentToClients(srv, db), time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		if n := proxy.SentToClients(srv, db); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > 200*time.Millisecond {
			return
		}
	}
	t.Fatal("pgmux kept sending to clients that do not read")
}

// awaitGone waits until no client of db is logged in.
func awaitGone(t *testing.T, srv *proxy.Server, db string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		left := 0
		for _, sess := range srv.Sessions() {
			if sess.Info().Database == db {
				left++
			}
		}
		if left == 0 {
			return
		}
	}
	t.Fatalf("clients of %s still connected after 30 s", db)
}

// endsWithFatalOrClose reads on until the connection ends: with whole messages and a
// FATAL as the last one, or cut anywhere (a client that does not read is closed untold).
func (c *streamClient) endsWithFatalOrClose() error {
	deadline := time.Now().Add(30 * time.Second)
	if err := c.nc.SetReadDeadline(deadline); err != nil {
		return err
	}
	fatal := false
	for {
		typ, body, err := c.next()
		switch {
		case err != nil && time.Now().After(deadline):
			return fmt.Errorf("the connection did not end: %w", err)
		case err != nil:
			return nil // the end of the stream, maybe inside a message, or a reset
		case fatal:
			return fmt.Errorf("%q after the FATAL", typ)
		case typ == 'E':
			e := &pgproto3.ErrorResponse{}
			if err := e.Decode(body); err != nil {
				return err
			}
			if e.Severity != "FATAL" || e.Code != "57P01" {
				return fmt.Errorf("error %s %s %s", e.Severity, e.Code, e.Message)
			}
			fatal = true
		}
	}
}
