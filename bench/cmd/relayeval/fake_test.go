package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

// fakePG is a PostgreSQL stand-in on loopback for the relay's framing and pooling: trust
// login, then per backend:
//
//	"echo X"     one row X (simple), or the first parameter (extended)
//	"whoami"     one row: the backend's number
//	"big N"      N rows of 1000 bytes
//	"BEGIN"      ReadyForQuery 'T' until "COMMIT"
//
// Answers carry what the client sent, so a client that gets another's answer sees it.
type fakePG struct {
	ln       net.Listener
	backends atomic.Int32
	mu       sync.Mutex
	conns    []net.Conn
}

func startFakePG(t *testing.T) *fakePG {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &fakePG{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			go f.serve(c, int(f.backends.Add(1)))
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.conns {
			_ = c.Close()
		}
	})
	return f
}

func (f *fakePG) connString() string {
	a := f.ln.Addr().(*net.TCPAddr)
	return fmt.Sprintf("host=127.0.0.1 port=%d user=u dbname=d sslmode=disable", a.Port)
}

func (f *fakePG) serve(c net.Conn, id int) {
	defer c.Close()
	be := pgproto3.NewBackend(c, c)
	if _, err := be.ReceiveStartupMessage(); err != nil {
		return
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "15.99 fake"})
	be.Send(&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"})
	be.Send(&pgproto3.BackendKeyData{ProcessID: uint32(id), SecretKey: []byte{0, 0, 0, 7}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	tx := byte('I')
	var query string
	var param []byte
	desc := &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("v"), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}}}
	rows := func(q string, arg []byte) {
		switch word, rest, _ := strings.Cut(q, " "); word {
		case "echo":
			if arg == nil {
				arg = []byte(rest)
			}
			be.Send(&pgproto3.DataRow{Values: [][]byte{arg}})
		case "whoami":
			be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte(strconv.Itoa(id))}})
		case "big":
			n, _ := strconv.Atoi(rest)
			v := []byte(strings.Repeat("x", 1000))
			for i := 0; i < n; i++ {
				be.Send(&pgproto3.DataRow{Values: [][]byte{v}})
			}
		}
		be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
	}
	for {
		msg, err := be.Receive()
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *pgproto3.Query:
			switch m.String {
			case "BEGIN":
				tx = 'T'
				be.Send(&pgproto3.CommandComplete{CommandTag: []byte("BEGIN")})
			case "COMMIT":
				tx = 'I'
				be.Send(&pgproto3.CommandComplete{CommandTag: []byte("COMMIT")})
			default:
				be.Send(desc)
				rows(m.String, nil)
			}
			be.Send(&pgproto3.ReadyForQuery{TxStatus: tx})
		case *pgproto3.Parse:
			query = m.Query
			be.Send(&pgproto3.ParseComplete{})
		case *pgproto3.Bind:
			param = nil
			if len(m.Parameters) > 0 {
				param = append([]byte(nil), m.Parameters[0]...)
			}
			be.Send(&pgproto3.BindComplete{})
		case *pgproto3.Describe:
			if m.ObjectType == 'S' {
				be.Send(&pgproto3.ParameterDescription{ParameterOIDs: []uint32{25}})
			}
			be.Send(desc)
		case *pgproto3.Execute:
			rows(query, param)
		case *pgproto3.Sync:
			be.Send(&pgproto3.ReadyForQuery{TxStatus: tx})
		case *pgproto3.Terminate:
			return
		default:
			be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "0A000", Message: fmt.Sprintf("fake: %T", m)})
		}
		if err := be.Flush(); err != nil {
			return
		}
	}
}
