package multihost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestPartialBatchEndingStandbyTransaction: inside a read-only transaction open on a
// standby, an extended-protocol request that ends it and goes on is answered as a direct
// connection to the primary answers it also when it ends with a Flush (the client reads
// the answers before its Sync) or has not all arrived when pgmux looks at it (written in
// parts, a pause between). Those ran wholly on the standby, the write after the COMMIT
// failing with 25006. An error before the end skips the rest up to the client's Sync,
// as on PostgreSQL. A switch to read-write (after a SHOW) in a part of the request that
// had not arrived when pgmux looked at it moves the transaction to the primary; the
// standby refused it (0A000).
func TestPartialBatchEndingStandbyTransaction(t *testing.T) {
	p := startReplicaPair(t, nil, nil, "replica_reads=explicit").ready(t, "CREATE TABLE pb (x int); GRANT ALL ON pb TO app")
	const ins = "INSERT INTO pb VALUES (1)"
	ex := func(q string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: q}, &pgproto3.Bind{},
			&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}}
	}
	msgs := func(parts ...any) []pgproto3.FrontendMessage {
		var out []pgproto3.FrontendMessage
		for _, p := range parts {
			switch p := p.(type) {
			case string:
				out = append(out, ex(p)...)
			case pgproto3.FrontendMessage:
				out = append(out, p)
			}
		}
		return out
	}
	sync, flush := &pgproto3.Sync{}, &pgproto3.Flush{}
	// A write of msgs; with first > 0 only its first bytes, the rest after gap. The
	// answers are read up to a ReadyForQuery, or, after a Flush, until none come.
	type write struct {
		msgs  []pgproto3.FrontendMessage
		first int
		gap   time.Duration
	}
	w := func(m []pgproto3.FrontendMessage) write { return write{msgs: m} }
	// upTo writes m up to the end of its first n messages and 3 bytes of the next one,
	// the rest after gap.
	upTo := func(m []pgproto3.FrontendMessage, n int, gap time.Duration) write {
		first := 3
		for _, x := range m[:n] {
			first += len(encode(t, x))
		}
		return write{msgs: m, first: first, gap: gap}
	}
	for _, tc := range []struct {
		name   string
		writes []write
		alone  bool // the transaction's BEGIN alone before: it may still switch to read-write
	}{
		{name: "Flush-driven: COMMIT, write, Flush; Sync", writes: []write{w(msgs("COMMIT", ins, flush)), w(msgs(sync))}},
		{name: "Flush-driven: read, COMMIT, Flush; write, Sync", writes: []write{w(msgs("SELECT 1", "COMMIT", flush)), w(msgs(ins, sync))}},
		{name: "Flush-driven: COMMIT, write, Flush; read, Sync", writes: []write{w(msgs("COMMIT", ins, flush)),
			w(msgs("SELECT pg_is_in_recovery()", sync))}},
		{name: "Flush-driven: error before COMMIT", writes: []write{w(msgs("SELECT 1/0", "COMMIT", ins, flush)), w(msgs(sync)),
			w(msgs(&pgproto3.Query{String: "ROLLBACK"}))}},
		{name: "the write not all here", writes: []write{upTo(msgs("COMMIT", ins, sync), 4, 300*time.Millisecond)}},
		{name: "the write a moment later", writes: []write{upTo(msgs("COMMIT", ins, sync), 4, 20*time.Millisecond)}},
		{name: "the COMMIT's Execute not here", writes: []write{upTo(msgs("COMMIT", ins, sync), 3, 300*time.Millisecond)}},
		{name: "the COMMIT not here", writes: []write{upTo(msgs("SELECT 1", "COMMIT", ins, sync), 4, 300*time.Millisecond)}},
		{name: "END, then its Sync later", writes: []write{upTo(msgs("END", sync), 4, 300*time.Millisecond),
			w(msgs(ins, sync))}},
		{name: "a named COMMIT, Flush-driven", writes: []write{w(msgs(&pgproto3.Parse{Name: "e1", Query: "COMMIT"}, sync)),
			w(msgs(&pgproto3.Bind{PreparedStatement: "e1"}, &pgproto3.Execute{}, ins, flush)), w(msgs(sync))}},
		{name: "a named COMMIT after a pause", writes: []write{w(msgs(&pgproto3.Parse{Name: "e2", Query: "COMMIT"}, sync)),
			upTo(msgs("SELECT 1", &pgproto3.Bind{PreparedStatement: "e2"}, &pgproto3.Execute{}, ins, sync), 4, 300*time.Millisecond)}},
		{name: "a switch to read-write not all here", writes: []write{upTo(msgs("SHOW work_mem", "SET TRANSACTION READ WRITE", ins, "COMMIT", sync),
			4, 300*time.Millisecond)}, alone: true},
		{name: "error before COMMIT, not all here", writes: []write{upTo(msgs("SELECT 1/0", "COMMIT", ins, sync), 8, 300*time.Millisecond),
			w(msgs(&pgproto3.Query{String: "ROLLBACK"}))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := func(c *pgx.Conn) []string {
				var out []string
				for _, wr := range tc.writes {
					var b []byte
					for _, m := range wr.msgs {
						b = append(b, encode(t, m)...)
					}
					conn := c.PgConn().Conn()
					if wr.first > 0 {
						_, err := conn.Write(b[:wr.first])
						require.NoError(t, err)
						time.Sleep(wr.gap)
						b = b[wr.first:]
					}
					_, err := conn.Write(b)
					require.NoError(t, err)
					_, flushed := wr.msgs[len(wr.msgs)-1].(*pgproto3.Flush)
					out = append(out, answers(t, c.PgConn(), flushed)...)
				}
				// The client's next request gets its own answer.
				_, err := c.PgConn().Conn().Write(encode(t, &pgproto3.Query{String: "SELECT 'next'"}))
				require.NoError(t, err)
				return append(out, answers(t, c.PgConn(), false)...)
			}
			direct := muxtest.Connect(t, p.primary.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeExec, opTimeout)
			viaMux := muxtest.Connect(t, p.mux.URL(pgtest.AppUser, pgtest.AppPassword, "app"), pgx.QueryExecModeExec, opTimeout)
			_, err := direct.Exec(context.Background(), "BEGIN READ ONLY")
			require.NoError(t, err)
			if tc.alone {
				beginAloneOnStandby(t, p, viaMux)
			} else {
				beginOnStandby(t, p, viaMux)
			}
			want := run(direct)
			require.Equal(t, want, run(viaMux), "through pgmux as on the primary")
		})
	}
}

// answers reads the server's messages up to a ReadyForQuery, or with flushed until none
// came for 300 ms, as short strings.
func answers(t *testing.T, pc *pgconn.PgConn, flushed bool) []string {
	t.Helper()
	var out []string
	conn := pc.Conn()
	defer func() { _ = conn.SetReadDeadline(time.Time{}) }()
	for i := 0; i < 100; i++ {
		wait := opTimeout
		if flushed {
			wait = 300 * time.Millisecond
		}
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(wait)))
		m, err := pc.ReceiveMessage(context.Background())
		if err != nil {
			var ne net.Error
			if flushed && errors.As(err, &ne) && ne.Timeout() {
				return out
			}
			require.NoError(t, err)
		}
		switch m := m.(type) {
		case *pgproto3.CommandComplete:
			out = append(out, "C:"+string(m.CommandTag))
		case *pgproto3.DataRow:
			out = append(out, "D:"+string(m.Values[0]))
		case *pgproto3.ErrorResponse:
			out = append(out, "E:"+m.Code)
		case *pgproto3.ReadyForQuery:
			return append(out, "Z:"+string(m.TxStatus))
		case *pgproto3.ParameterStatus, *pgproto3.NoticeResponse:
		default:
			out = append(out, fmt.Sprintf("%T", m)[len("*pgproto3."):])
		}
	}
	t.Fatal("answers without end")
	return nil
}

func encode(t *testing.T, m pgproto3.FrontendMessage) []byte {
	t.Helper()
	b, err := m.Encode(nil)
	require.NoError(t, err)
	return b
}
