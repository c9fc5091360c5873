//go:build linux && !race

// Not in race builds: they relay with the ordinary read and write calls and the race
// runtime's own bookkeeping (protocol/wire/rawio_*.go); the Makefile's pass without -race
// runs this test.

package proxy_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

// rawTx is a client that replays one encoded request and reads to ReadyForQuery without
// allocating, so that a process-wide allocation count is pgmux's.
type rawTx struct {
	nc  net.Conn
	buf []byte
}

// roundTrip sends req and reads the answer up to ReadyForQuery; it fails on an
// ErrorResponse.
func (c *rawTx) roundTrip(req []byte) error {
	if _, err := c.nc.Write(req); err != nil {
		return err
	}
	return c.await()
}

// await reads an answer up to ReadyForQuery.
func (c *rawTx) await() error {
	have := 0
	for {
		// Whole messages at the front of buf are consumed; a partial one stays.
		for have >= 5 {
			n := int(binary.BigEndian.Uint32(c.buf[1:5])) + 1
			if n > len(c.buf) {
				return fmt.Errorf("a %d-byte message", n)
			}
			if have < n {
				break
			}
			switch c.buf[0] {
			case 'E':
				return fmt.Errorf("error response: %q", c.buf[5:n])
			case 'Z':
				if have != n {
					return fmt.Errorf("%d bytes after ReadyForQuery", have-n)
				}
				return nil
			}
			copy(c.buf, c.buf[n:have])
			have -= n
		}
		m, err := c.nc.Read(c.buf[have:])
		if err != nil {
			return err
		}
		have += m
	}
}

func encode(t *testing.T, msgs ...pgproto3.FrontendMessage) []byte {
	t.Helper()
	var b []byte
	for _, m := range msgs {
		var err error
		b, err = m.Encode(b)
		require.NoError(t, err)
	}
	return b
}

// TestSteadyStateAllocations counts the heap allocations of the whole pgmux process per
// transaction once a client's link is warm (the server idle in the pool, its prepared
// statement cached, the session's buffers grown): simple queries, unnamed extended
// requests and a named prepared statement's Bind/Execute/Sync, with client_loop off and
// on. Before the prepared statement's Bind stopped building a slice of expectations for
// itself alone (Session.sendWith) it cost one allocation (160 bytes) per transaction.
func TestSteadyStateAllocations(t *testing.T) {
	const sql = "SELECT 1 WHERE $1::int4 > 0"
	requests := []struct {
		name  string
		setup []pgproto3.FrontendMessage
		req   []pgproto3.FrontendMessage
	}{
		{"simple", nil, []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 1"}}},
		{"extended", nil, []pgproto3.FrontendMessage{
			&pgproto3.Parse{Query: sql}, &pgproto3.Bind{Parameters: [][]byte{[]byte("7")}},
			&pgproto3.Execute{}, &pgproto3.Sync{}}},
		{"prepared", []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "s1", Query: sql}, &pgproto3.Sync{}},
			[]pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("7")}},
				&pgproto3.Execute{}, &pgproto3.Sync{}}},
	}
	for _, loop := range []string{"0", "1"} {
		h := startProxy(t, harnessOpts{extra: map[string]string{"client_loop": loop, "default_pool_size": "1"}})
		for _, r := range requests {
			t.Run(r.name+"/client_loop="+loop, func(t *testing.T) {
				lc := dialLoopClient(t, h.port)
				c := &rawTx{nc: lc.nc, buf: make([]byte, 8192)}
				require.NoError(t, c.nc.SetDeadline(time.Now().Add(60*time.Second)))
				if r.setup != nil {
					require.NoError(t, c.roundTrip(encode(t, r.setup...)))
				}
				req := encode(t, r.req...)
				for range 300 {
					require.NoError(t, c.roundTrip(req))
				}
				const n = 3000
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for range n {
					if err := c.roundTrip(req); err != nil {
						require.NoError(t, err)
					}
				}
				runtime.ReadMemStats(&after)
				per := float64(after.Mallocs-before.Mallocs) / n
				bytes := float64(after.TotalAlloc-before.TotalAlloc) / n
				t.Logf("%s client_loop=%s: %.2f allocations, %.0f bytes per transaction", r.name, loop, per, bytes)
				// Not exactly zero: the process's own timers and sweeps allocate now and
				// then (measured 0.00 to two decimals).
				require.Less(t, per, 0.02, "allocations per transaction")
			})
			t.Run(r.name+"/queued/client_loop="+loop, func(t *testing.T) {
				// 20 clients each send a request before any answer is read: all but one
				// wait for the pool's only server, then are served in turn.
				cs := make([]*rawTx, 20)
				for i := range cs {
					lc := dialLoopClient(t, h.port)
					cs[i] = &rawTx{nc: lc.nc, buf: make([]byte, 8192)}
					require.NoError(t, cs[i].nc.SetDeadline(time.Now().Add(60*time.Second)))
					if r.setup != nil {
						require.NoError(t, cs[i].roundTrip(encode(t, r.setup...)))
					}
				}
				req := encode(t, r.req...)
				round := func() error {
					for _, c := range cs {
						if _, err := c.nc.Write(req); err != nil {
							return err
						}
					}
					for _, c := range cs {
						if err := c.await(); err != nil {
							return err
						}
					}
					return nil
				}
				for range 30 {
					require.NoError(t, round())
				}
				const rounds = 150
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for range rounds {
					if err := round(); err != nil {
						require.NoError(t, err)
					}
				}
				runtime.ReadMemStats(&after)
				n := float64(rounds * len(cs))
				per := float64(after.Mallocs-before.Mallocs) / n
				t.Logf("%s queued client_loop=%s: %.2f allocations, %.0f bytes per transaction", r.name, loop,
					per, float64(after.TotalAlloc-before.TotalAlloc)/n)
				require.LessOrEqual(t, per, queuedBudget, "allocations per transaction")
			})
		}
	}
}

// queuedBudget bounds the allocations per transaction of a client that waited for its
// server (TestSteadyStateAllocations/queued). Measured 0.00-0.03: what remains is the
// runtime's, not pgmux's (a goroutine that blocks on its waiter's channel takes a sudog
// from a per-P cache that each GC empties). Before the pool's queue became a ring
// (pool/waitq.go) it was 0.05-0.08: a re-slice from the front reallocated at each append.
const queuedBudget = 0.1
