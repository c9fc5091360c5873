package faults

import (
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

// fakePG is a tiny PostgreSQL stand-in on 127.0.0.1 that pgmux can log in to. Its
// behaviour after login is chosen per test: answer simple queries, or go silent.
type fakePG struct {
	ln   net.Listener
	Port int

	mu         sync.Mutex
	loginDelay time.Duration // before AuthenticationOk
	silent     bool          // after login, read and never answer
	tornRow    int           // if > 0, answer a Query with this many bytes of a longer DataRow, then close
	blackhole  bool          // accept and never answer anything, not even the startup
	conns      []net.Conn
	logins     int
	cancels    int
	wg         sync.WaitGroup
}

func startFakePG(t testing.TB) *fakePG {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	f := &fakePG{ln: ln, Port: ln.Addr().(*net.TCPAddr).Port}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

func (f *fakePG) set(fn func(f *fakePG)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakePG) counts() (logins, cancels int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logins, f.cancels
}

func (f *fakePG) close() {
	_ = f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *fakePG) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			f.serve(c)
		}()
	}
}

func (f *fakePG) serve(c net.Conn) {
	f.mu.Lock()
	blackhole, delay := f.blackhole, f.loginDelay
	f.mu.Unlock()
	if blackhole {
		var b [1024]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				return
			}
		}
	}
	be := pgproto3.NewBackend(c, c)
	for {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return
		}
		switch msg.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			if _, err := c.Write([]byte{'N'}); err != nil {
				return
			}
			continue
		case *pgproto3.CancelRequest:
			f.mu.Lock()
			f.cancels++
			f.mu.Unlock()
			// Never acknowledge: pgmux must give up after cancel_wait_timeout.
			var b [1]byte
			_, _ = c.Read(b[:])
			return
		}
		break
	}
	time.Sleep(delay)
	f.mu.Lock()
	f.logins++
	f.mu.Unlock()
	be.Send(&pgproto3.AuthenticationOk{})
	for _, p := range [][2]string{{"server_version", "16.0"}, {"client_encoding", "UTF8"},
		{"server_encoding", "UTF8"}, {"DateStyle", "ISO, MDY"}, {"TimeZone", "UTC"},
		{"integer_datetimes", "on"}, {"standard_conforming_strings", "on"}} {
		be.Send(&pgproto3.ParameterStatus{Name: p[0], Value: p[1]})
	}
	be.Send(&pgproto3.BackendKeyData{ProcessID: 4242, SecretKey: []byte{0, 0, 0, 99}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	for {
		msg, err := be.Receive()
		if err != nil {
			return
		}
		f.mu.Lock()
		silent, torn := f.silent, f.tornRow
		f.mu.Unlock()
		if silent {
			continue
		}
		if _, ok := msg.(*pgproto3.Query); ok && torn > 0 {
			be.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("x"),
				DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}}})
			// A DataRow of one value 1 MB long, cut after torn bytes of it.
			row := binary.BigEndian.AppendUint32([]byte{'D'}, 4+2+4+1<<20)
			row = binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(row, 1), 1<<20)
			if be.Flush() == nil {
				_, _ = c.Write(append(row, make([]byte, torn)...))
			}
			return
		}
		switch m := msg.(type) {
		case *pgproto3.Query:
			be.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("x"),
				DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}}})
			be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte(m.String)}})
			be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case *pgproto3.Sync:
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		case *pgproto3.Terminate:
			return
		}
		if be.Flush() != nil {
			return
		}
	}
}
