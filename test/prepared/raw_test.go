package prepared

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

// raw is a client speaking the protocol message by message (pgproto3 over the socket of
// a pgconn connection that did the startup handshake).
type raw struct {
	t  testing.TB
	hc *pgconn.HijackedConn
	fe *pgproto3.Frontend
}

func (m *mux) raw(t testing.TB, db string) *raw {
	t.Helper()
	pc := m.pgconn(t, db)
	hc, err := pc.Hijack()
	require.NoError(t, err)
	t.Cleanup(func() { _ = hc.Conn.Close() })
	return &raw{t: t, hc: hc, fe: hc.Frontend}
}

// send writes messages to pgmux in one write.
func (r *raw) send(msgs ...pgproto3.FrontendMessage) {
	r.t.Helper()
	for _, m := range msgs {
		r.fe.Send(m)
	}
	require.NoError(r.t, r.fe.Flush())
}

// recv reads one message (copied: pgproto3 reuses them).
func (r *raw) recv() pgproto3.BackendMessage {
	r.t.Helper()
	require.NoError(r.t, r.hc.Conn.SetReadDeadline(time.Now().Add(opTimeout)))
	msg, err := r.fe.Receive()
	require.NoError(r.t, err)
	switch m := msg.(type) {
	case *pgproto3.DataRow:
		vals := make([][]byte, len(m.Values))
		for i, v := range m.Values {
			vals[i] = append([]byte(nil), v...)
		}
		return &pgproto3.DataRow{Values: vals}
	case *pgproto3.RowDescription:
		fs := append([]pgproto3.FieldDescription(nil), m.Fields...)
		for i := range fs {
			fs[i].Name = append([]byte(nil), fs[i].Name...)
		}
		return &pgproto3.RowDescription{Fields: fs}
	case *pgproto3.ParameterDescription:
		return &pgproto3.ParameterDescription{ParameterOIDs: append([]uint32(nil), m.ParameterOIDs...)}
	case *pgproto3.ErrorResponse:
		c := *m
		return &c
	case *pgproto3.CommandComplete:
		return &pgproto3.CommandComplete{CommandTag: append([]byte(nil), m.CommandTag...)}
	case *pgproto3.ReadyForQuery:
		return &pgproto3.ReadyForQuery{TxStatus: m.TxStatus}
	}
	return msg
}

// expect reads len(want) messages and checks their kinds, given as short names: 1 2 3
// (Parse, Bind, Close complete), t (ParameterDescription), T (RowDescription), n
// (NoData), D (DataRow), C (CommandComplete), s (PortalSuspended), E (ErrorResponse),
// Z (ReadyForQuery). It returns the messages.
func (r *raw) expect(want string) []pgproto3.BackendMessage {
	r.t.Helper()
	var got []pgproto3.BackendMessage
	var kinds strings.Builder
	for range len(want) {
		m := r.recv()
		got = append(got, m)
		kinds.WriteByte(kindOf(m))
		if _, ok := m.(*pgproto3.ErrorResponse); ok && !strings.Contains(want, "E") {
			r.t.Fatalf("unexpected error %+v after %q, want %q", m, kinds.String(), want)
		}
	}
	require.Equal(r.t, want, kinds.String())
	return got
}

func kindOf(m pgproto3.BackendMessage) byte {
	switch m.(type) {
	case *pgproto3.ParseComplete:
		return '1'
	case *pgproto3.BindComplete:
		return '2'
	case *pgproto3.CloseComplete:
		return '3'
	case *pgproto3.ParameterDescription:
		return 't'
	case *pgproto3.RowDescription:
		return 'T'
	case *pgproto3.NoData:
		return 'n'
	case *pgproto3.DataRow:
		return 'D'
	case *pgproto3.CommandComplete:
		return 'C'
	case *pgproto3.PortalSuspended:
		return 's'
	case *pgproto3.ErrorResponse:
		return 'E'
	case *pgproto3.ReadyForQuery:
		return 'Z'
	case *pgproto3.EmptyQueryResponse:
		return 'I'
	}
	return '?'
}

// Short constructors for frontend messages.
func parse(name, sql string, oids ...uint32) *pgproto3.Parse {
	return &pgproto3.Parse{Name: name, Query: sql, ParameterOIDs: oids}
}

func bind(portal, stmt string, params ...string) *pgproto3.Bind {
	vals := make([][]byte, len(params))
	for i, p := range params {
		vals[i] = []byte(p)
	}
	return &pgproto3.Bind{DestinationPortal: portal, PreparedStatement: stmt, Parameters: vals}
}

func execute(portal string, maxRows uint32) *pgproto3.Execute {
	return &pgproto3.Execute{Portal: portal, MaxRows: maxRows}
}

func describeStmt(name string) *pgproto3.Describe {
	return &pgproto3.Describe{ObjectType: 'S', Name: name}
}
func describePortal(name string) *pgproto3.Describe {
	return &pgproto3.Describe{ObjectType: 'P', Name: name}
}
func closeStmt(name string) *pgproto3.Close { return &pgproto3.Close{ObjectType: 'S', Name: name} }

var (
	syncMsg  = &pgproto3.Sync{}
	flushMsg = &pgproto3.Flush{}
)

// value returns the text of a DataRow's column i.
func value(t testing.TB, m pgproto3.BackendMessage, i int) string {
	t.Helper()
	row, ok := m.(*pgproto3.DataRow)
	require.True(t, ok, "want a DataRow, got %T", m)
	require.Greater(t, len(row.Values), i)
	return string(row.Values[i])
}

// run executes a prepared statement with one Bind/Execute/Sync and returns the first
// column of its one row.
func (r *raw) run(stmt string, params ...string) string {
	r.t.Helper()
	r.send(bind("", stmt, params...), execute("", 0), syncMsg)
	got := r.expect("2DCZ")
	return value(r.t, got[1], 0)
}

// query runs simple-protocol SQL and returns the first column of each row.
func (r *raw) query(sql string) []string {
	r.t.Helper()
	r.send(&pgproto3.Query{String: sql})
	var out []string
	for {
		switch m := r.recv().(type) {
		case *pgproto3.DataRow:
			out = append(out, string(m.Values[0]))
		case *pgproto3.ErrorResponse:
			r.t.Fatalf("%s: %s", sql, m.Message)
		case *pgproto3.ReadyForQuery:
			return out
		}
	}
}

func errorOf(t testing.TB, m pgproto3.BackendMessage) *pgproto3.ErrorResponse {
	t.Helper()
	e, ok := m.(*pgproto3.ErrorResponse)
	require.True(t, ok, "want an ErrorResponse, got %T", m)
	return e
}

// inModes runs f as subtests in cache and unnamed prepared_statement_mode.
func inModes(t *testing.T, s setup, f func(t *testing.T, m *mux)) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := s
			s.mode = mode
			f(t, startMux(t, s))
		})
	}
}

func bg(t testing.TB) context.Context { return ctx(t) }

var _ = fmt.Sprint
