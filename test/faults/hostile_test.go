package faults

import (
	"context"
	"encoding/binary"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// expectFatal reads pgmux's answer on nc: an ErrorResponse with code, then the close.
func expectFatal(t testing.TB, nc net.Conn, code string) *pgproto3.ErrorResponse {
	t.Helper()
	require.NoError(t, nc.SetReadDeadline(time.Now().Add(opTimeout)))
	fe := pgproto3.NewFrontend(nc, nc)
	for {
		msg, err := fe.Receive()
		require.NoError(t, err, "want an ErrorResponse %s before the close", code)
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			require.Equal(t, code, e.Code, "%s: %s", e.Severity, e.Message)
			require.Equal(t, "FATAL", e.Severity)
			requireClosed(t, nc, 5*time.Second)
			return e
		}
	}
}

func typed(typ byte, body []byte) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(body)+4))
	return append(b, body...)
}

// TestHostileInput sends what no client should; the offender is told why and closed,
// while a well-behaved client beside it sees no error at all.
func TestHostileInput(t *testing.T) {
	pg := pgtest.Start(t)
	m := startMux(t, pg, bouncer{Extra: []string{"max_packet_size = 10000", "client_login_timeout = 1"}})
	by := startBystander(t, m.App(pgtest.AppDB))
	defer by.finish(t)

	dial := func(t *testing.T) net.Conn {
		nc, err := net.Dial("tcp", m.Addr())
		require.NoError(t, err)
		t.Cleanup(func() { nc.Close() })
		return nc
	}
	login := func(t *testing.T) *rawClient {
		c := dialRaw(t, m, pgtest.AppDB)
		t.Cleanup(func() { c.nc.Close() })
		return c
	}

	t.Run("oversized message", func(t *testing.T) {
		c := login(t)
		q := make([]byte, 20000)
		for i := range q {
			q[i] = 'x'
		}
		_, err := c.nc.Write(typed('Q', append(q, 0)))
		require.NoError(t, err)
		e := expectFatal(t, c.nc, "08P01")
		require.Contains(t, e.Message, "too large")
	})
	t.Run("oversized declared length", func(t *testing.T) {
		c := login(t)
		_, err := c.nc.Write([]byte{'Q', 0x7f, 0xff, 0xff, 0xff})
		require.NoError(t, err)
		expectFatal(t, c.nc, "08P01")
	})
	t.Run("length below header", func(t *testing.T) {
		c := login(t)
		_, err := c.nc.Write([]byte{'Q', 0, 0, 0, 2})
		require.NoError(t, err)
		expectFatal(t, c.nc, "08P01")
	})
	t.Run("unknown message type", func(t *testing.T) {
		c := login(t)
		_, err := c.nc.Write(typed('z', []byte("boo\x00")))
		require.NoError(t, err)
		expectFatal(t, c.nc, "08P01")
	})
	t.Run("HTTP request instead of startup", func(t *testing.T) {
		nc := dial(t)
		_, err := nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		require.NoError(t, err)
		expectFatal(t, nc, "08P01")
	})
	t.Run("bytes before the startup packet", func(t *testing.T) {
		nc := dial(t)
		_, err := nc.Write(append([]byte{0, 0, 0, 9, 1, 2, 3, 4, 5}, startupPacket("user", "app")...))
		require.NoError(t, err)
		// Read as a protocol version word, as PostgreSQL does.
		expectFatal(t, nc, "0A000")
	})
	t.Run("startup without terminator", func(t *testing.T) {
		nc := dial(t)
		p := startupPacket("user", "app", "database", "app")
		_, err := nc.Write(p[:len(p)-1])
		require.NoError(t, err)
		requireClosed(t, nc, 5*time.Second)
	})
	t.Run("thousands of startup parameters", func(t *testing.T) {
		nc := dial(t)
		kv := []string{"user", "app"}
		for i := range 2000 {
			kv = append(kv, "k"+strconv.Itoa(i), "v")
		}
		p := startupPacket(kv...)
		_, err := nc.Write(p)
		require.NoError(t, err)
		expectFatal(t, nc, "08P01")
	})
	t.Run("many small startup parameters", func(t *testing.T) {
		nc := dial(t)
		kv := []string{"user", "app"}
		for i := range 1500 {
			kv = append(kv, string(rune('a'+i%26)), "")
		}
		_, err := nc.Write(startupPacket(kv...))
		require.NoError(t, err)
		expectFatal(t, nc, "08P01")
	})
	t.Run("invalid UTF-8 in a query", func(t *testing.T) {
		c := login(t)
		c.send(t, &pgproto3.Query{String: "SELECT 'a\xff\xfeb'"})
		require.NoError(t, c.nc.SetReadDeadline(time.Now().Add(opTimeout)))
		var code string
		for {
			msg, err := c.fe.Receive()
			require.NoError(t, err)
			if e, ok := msg.(*pgproto3.ErrorResponse); ok {
				code = e.Code
			}
			if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
		require.Equal(t, "22021", code)
		c.send(t, &pgproto3.Query{String: "SELECT 1"})
		until[*pgproto3.ReadyForQuery](t, c)
	})
	t.Run("slowloris login", func(t *testing.T) {
		nc := dial(t)
		p := startupPacket("user", "app", "database", "app")
		start := time.Now()
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			for _, b := range p {
				if _, err := nc.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(150 * time.Millisecond)
			}
		}()
		requireClosed(t, nc, 10*time.Second)
		require.Less(t, time.Since(start), 4*time.Second)
		nc.Close()
		<-closed
	})
}

// TestConnectionStorm opens far more clients than max_client_conn at once: the excess
// get 53300, the rest and a client already connected go on.
func TestConnectionStorm(t *testing.T) {
	pg := pgtest.Start(t)
	m := startMux(t, pg, bouncer{Extra: []string{"max_client_conn = 20"}})
	by := startBystander(t, m.App(pgtest.AppDB))
	var mu sync.Mutex
	codes := map[string]int{}
	var held []*rawClientConn
	var wg sync.WaitGroup
	for range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := tryConnect(m.App(pgtest.AppDB))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[pgCode(err)]++
				return
			}
			codes["ok"]++
			held = append(held, &rawClientConn{c})
		}()
	}
	wg.Wait()
	t.Logf("storm results: %v", codes)
	require.Positive(t, codes["53300"], "nobody was refused")
	require.Equal(t, 60, codes["ok"]+codes["53300"], "unexpected errors: %v", codes)
	require.LessOrEqual(t, codes["ok"], 19)
	for _, c := range held {
		ctx, cancel := ctxT()
		var n int
		require.NoError(t, c.QueryRow(ctx, "SELECT 1").Scan(&n))
		cancel()
		c.Close(context.Background())
	}
	by.finish(t)
	// Capacity comes back once they leave.
	eventually(t, 10*time.Second, "capacity never came back", func() bool {
		c, err := tryConnect(m.App(pgtest.AppDB))
		if err != nil {
			return false
		}
		c.Close(context.Background())
		return true
	})
}

type rawClientConn struct{ *pgx.Conn }
