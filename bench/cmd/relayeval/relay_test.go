package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

// TestRelay drives each driver through a fake PostgreSQL (fake_test.go) with a pool of 2
// servers and 2 loops: many pgconn clients (simple and extended protocol, transactions,
// SSLRequest), requests split into single bytes, pipelined requests, Terminate, and a
// slow client reading a 4 MB answer through a small receive buffer. Every answer carries
// what its client sent, so a server handed to two clients at once shows as a wrong
// answer; at the end the fake has seen exactly the pool's 2 logins (no server was
// dropped and replaced).
func TestRelay(t *testing.T) {
	for _, drv := range []string{"goroutine", "epoll", "epoll-park", "epoll-raw", "gnet"} {
		t.Run(drv, func(t *testing.T) {
			f := startFakePG(t)
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			addr, err := serve(ctx, drv, "127.0.0.1:0", f.connString(), 2, 2)
			require.NoError(t, err)
			t.Run("clients", func(t *testing.T) { testClients(t, addr) })
			t.Run("split", func(t *testing.T) { testSplit(t, addr) })
			t.Run("pipelined", func(t *testing.T) { testPipelined(t, addr) })
			t.Run("slow", func(t *testing.T) { testSlow(t, addr) })
			require.EqualValues(t, 2, f.backends.Load(), "server logins: a server was dropped")
		})
	}
}

func connString(addr, sslmode string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("host=%s port=%s user=u dbname=d sslmode=%s connect_timeout=10", host, port, sslmode)
}

// one reads an answer of one row and returns its value ("" and an error otherwise).
func one(rr *pgconn.ResultReader) (string, error) {
	res := rr.Read()
	if res.Err != nil {
		return "", res.Err
	}
	if len(res.Rows) != 1 {
		return "", fmt.Errorf("%d rows", len(res.Rows))
	}
	return string(res.Rows[0][0]), nil
}

func testClients(t *testing.T, addr string) {
	const clients, rounds = 12, 30
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			mode := "disable"
			if i%2 == 1 {
				mode = "prefer" // SSLRequest first: the relay answers 'N'
			}
			c, err := pgconn.Connect(ctx, connString(addr, mode))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(ctx)
			if v := c.ParameterStatus("server_version"); v != "15.99 fake" {
				errs <- fmt.Errorf("server_version %q", v)
				return
			}
			for r := 0; r < rounds; r++ {
				tok := fmt.Sprintf("c%d-r%d", i, r)
				if got, err := one(c.ExecParams(ctx, "echo", [][]byte{[]byte(tok + "x")}, nil, nil, nil)); got != tok+"x" {
					errs <- fmt.Errorf("extended: %q (%v), want %q", got, err, tok+"x")
					return
				}
				mrr := c.Exec(ctx, "echo "+tok)
				res, err := mrr.ReadAll()
				if err != nil || len(res) != 1 || len(res[0].Rows) != 1 || string(res[0].Rows[0][0]) != tok {
					errs <- fmt.Errorf("simple: %v %v, want %q", res, err, tok)
					return
				}
				if r%10 == 0 { // a transaction keeps its server
					if _, err := c.Exec(ctx, "BEGIN").ReadAll(); err != nil {
						errs <- err
						return
					}
					a, err1 := one(c.ExecParams(ctx, "whoami", nil, nil, nil, nil))
					time.Sleep(time.Millisecond)
					b, err2 := one(c.ExecParams(ctx, "whoami", nil, nil, nil, nil))
					if _, err := c.Exec(ctx, "COMMIT").ReadAll(); err != nil {
						errs <- err
						return
					}
					if a != b || a == "" || err1 != nil || err2 != nil {
						errs <- fmt.Errorf("server changed inside a transaction: %s then %s (%v, %v)", a, b, err1, err2)
						return
					}
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// rawClient logs in with raw bytes and checks the greeting.
func rawClient(t *testing.T, addr string, dialer *net.Dialer) (net.Conn, *pgproto3.Frontend) {
	t.Helper()
	if dialer == nil {
		dialer = &net.Dialer{}
	}
	c, err := dialer.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	startup, err := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": "u", "database": "d"}}).Encode(nil)
	require.NoError(t, err)
	for _, b := range startup { // one byte per write
		_, err := c.Write([]byte{b})
		require.NoError(t, err)
	}
	fe := pgproto3.NewFrontend(c, c)
	var keys, params int
	for {
		m, err := fe.Receive()
		require.NoError(t, err)
		switch m := m.(type) {
		case *pgproto3.AuthenticationOk:
		case *pgproto3.ParameterStatus:
			params++
		case *pgproto3.BackendKeyData:
			keys++
		case *pgproto3.ReadyForQuery:
			require.Equal(t, 1, keys)
			require.Equal(t, 2, params)
			return c, fe
		case *pgproto3.ErrorResponse:
			t.Fatalf("greeting: error %s", m.Message)
		default:
			t.Fatalf("greeting: unexpected %T", m)
		}
	}
}

// expectRows reads one answer up to ReadyForQuery and returns its rows' first values.
func expectRows(t *testing.T, fe *pgproto3.Frontend) []string {
	t.Helper()
	var vals []string
	for {
		m, err := fe.Receive()
		require.NoError(t, err)
		switch m := m.(type) {
		case *pgproto3.DataRow:
			vals = append(vals, string(m.Values[0]))
		case *pgproto3.ReadyForQuery:
			require.Equal(t, byte('I'), m.TxStatus)
			return vals
		case *pgproto3.ErrorResponse:
			t.Fatalf("error: %s", m.Message)
		}
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

func testSplit(t *testing.T, addr string) {
	c, fe := rawClient(t, addr, nil)
	for _, chunk := range []int{1, 3, 7} {
		q := encode(t, &pgproto3.Query{String: "echo split"})
		ext := encode(t, &pgproto3.Parse{Query: "echo"}, &pgproto3.Bind{Parameters: [][]byte{[]byte("ext")}},
			&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{})
		for _, msg := range [][]byte{q, ext} {
			for i := 0; i < len(msg); i += chunk {
				_, err := c.Write(msg[i:min(i+chunk, len(msg))])
				require.NoError(t, err)
				time.Sleep(100 * time.Microsecond)
			}
		}
		require.Equal(t, []string{"split"}, expectRows(t, fe))
		require.Equal(t, []string{"ext"}, expectRows(t, fe))
	}
}

func testPipelined(t *testing.T, addr string) {
	c, fe := rawClient(t, addr, nil)
	// two requests in one write: the server is released only after the second answer
	_, err := c.Write(encode(t, &pgproto3.Query{String: "echo a"}, &pgproto3.Query{String: "echo b"},
		&pgproto3.Parse{Query: "echo"}, &pgproto3.Bind{Parameters: [][]byte{[]byte("c")}}, &pgproto3.Execute{}, &pgproto3.Sync{}))
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, expectRows(t, fe))
	require.Equal(t, []string{"b"}, expectRows(t, fe))
	require.Equal(t, []string{"c"}, expectRows(t, fe))
	// a request and Terminate in one write: the answer comes, then the end
	_, err = c.Write(encode(t, &pgproto3.Query{String: "echo d"}, &pgproto3.Terminate{}))
	require.NoError(t, err)
	require.Equal(t, []string{"d"}, expectRows(t, fe))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
}

// testSlow: a client with a 4 KB receive buffer reads a 4 MB answer in small bites while
// other clients keep using the pool's other server.
func testSlow(t *testing.T, addr string) {
	small := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	c, _ := rawClient(t, addr, small)
	const rows = 4000
	_, err := c.Write(encode(t, &pgproto3.Query{String: fmt.Sprintf("big %d", rows)}))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { // the other server serves others meanwhile
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		pc, err := pgconn.Connect(ctx, connString(addr, "disable"))
		if err != nil {
			done <- err
			return
		}
		defer pc.Close(ctx)
		for i := 0; i < 50; i++ {
			if _, err := pc.Exec(ctx, fmt.Sprintf("echo %d", i)).ReadAll(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	fe := pgproto3.NewFrontend(&slowReader{r: c}, c)
	var got int
	for {
		m, err := fe.Receive()
		require.NoError(t, err)
		if d, ok := m.(*pgproto3.DataRow); ok {
			require.Len(t, d.Values[0], 1000)
			got++
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	require.Equal(t, rows, got)
	require.NoError(t, <-done)
}

// slowReader reads at most 8 KB at a time and pauses every 64 reads.
type slowReader struct {
	r io.Reader
	n int
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.n++; s.n%64 == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	return s.r.Read(p[:min(len(p), 8192)])
}
