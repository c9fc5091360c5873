package pool_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/pool"
)

var sslRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// loginRelay relays the connections it accepts on a loopback port to pg and counts the
// logins among them: those whose first packet is not an SSLRequest (PostgreSQL answers
// that before it gives the connection a slot).
// While hang is set, it takes new connections and answers nothing, as a hung server whose
// kernel still completes connections.
func loginRelay(t *testing.T, pg *pgtest.Server) (port int, logins *atomic.Int32, hang *atomic.Bool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	logins, hang = new(atomic.Int32), new(atomic.Bool)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	keep := func(c net.Conn) {
		mu.Lock()
		open = append(open, c)
		mu.Unlock()
	}
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			keep(nc)
			wg.Go(func() {
				defer nc.Close()
				if hang.Load() {
					_, _ = io.Copy(io.Discard, nc)
					return
				}
				var first [8]byte
				if _, err := io.ReadFull(nc, first[:]); err != nil {
					return
				}
				if !bytes.Equal(first[:], sslRequest) {
					logins.Add(1)
				}
				up, err := net.Dial("tcp", net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)))
				if err != nil {
					return
				}
				keep(up)
				defer up.Close()
				if _, err := up.Write(first[:]); err != nil {
					return
				}
				go func() { _, _ = io.Copy(up, nc); up.Close() }()
				_, _ = io.Copy(nc, up)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port, logins, hang
}

// TestCheckLoginWithinLimits: Check, for a pool with no idle connection and none given
// back lately, logs a connection in only within the pool's size and its shared limits
// (max_db_connections, max_user_connections). At either, it used to log one in beyond
// them, counted nowhere (not in SHOW SERVERS, not against the limits): a server sized to
// max_db_connections could refuse a client's login for /readyz's. It now asks the server
// only to answer an SSLRequest, which a hung server does not.
func TestCheckLoginWithinLimits(t *testing.T) {
	t.Parallel()
	pg := pgtest.Start(t)
	for _, tc := range []struct {
		name  string
		size  int
		other bool // a second pool under the same limit holds its slot
		hung  bool // the server stops answering once the slot is taken
	}{
		{"pool at its size", 1, false, false},
		{"shared limit reached", 2, true, false},
		{"server hung at the limit", 1, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			port, logins, hang := loginRelay(t, pg)
			target := func() *pool.Target {
				return &pool.Target{Host: "127.0.0.1", Port: port, Database: pgtest.AppDB,
					User: pgtest.AppUser, Password: pgtest.AppPassword}
			}
			lim := pool.NewLimit(1)
			p := newPool(t, pool.Options{Size: tc.size, Limits: []*pool.Limit{lim}, Target: target})
			holder := p
			if tc.other {
				holder = newPool(t, pool.Options{Size: tc.size, Limits: []*pool.Limit{lim}, Target: target})
			}
			c, _ := acquire(t, holder)
			defer c.Release(false)
			require.Equal(t, int32(1), logins.Load())

			hang.Store(tc.hung)
			limit := wait
			if tc.hung {
				limit = 300 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), limit)
			defer cancel()
			err := p.Check(ctx)
			if tc.hung {
				require.ErrorIs(t, err, context.DeadlineExceeded, "a hung server is not ready")
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, int32(1), logins.Load(), "the check logged a connection in beyond the limits")
			require.Equal(t, 1, lim.Count())
		})
	}
}
