package sticky

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// pipelined sends each of qs as its own simple Query, all in one write, and reads the
// answers up to the last ReadyForQuery. It returns what the client saw, one line per
// message, ParameterStatus apart: the last value reported for each name (pgmux may
// report a value it set again after the ReadyForQuery of the request that reset it,
// where PostgreSQL reports it before).
func pipelined(t testing.TB, conn *pgx.Conn, qs ...string) (seen []string, reported map[string]string) {
	t.Helper()
	pc := conn.PgConn()
	require.NoError(t, pc.Conn().SetDeadline(time.Now().Add(opTimeout)))
	defer func() { _ = pc.Conn().SetDeadline(time.Time{}) }()
	fe := pc.Frontend()
	for _, q := range qs {
		fe.Send(&pgproto3.Query{String: q})
	}
	require.NoError(t, fe.Flush())
	reported = map[string]string{}
	return answers(t, fe, len(qs), reported), reported
}

// answers reads the answers to n requests, up to their last ReadyForQuery, one line per
// message: tags, rows, each error's fields, the transaction status. The values of
// ParameterStatus messages go to reported instead.
func answers(t testing.TB, fe *pgproto3.Frontend, n int, reported map[string]string) (seen []string) {
	t.Helper()
	for ready := 0; ready < n; {
		msg, err := fe.Receive()
		require.NoError(t, err)
		switch m := msg.(type) {
		case *pgproto3.ReadyForQuery:
			ready++
			seen = append(seen, "Z "+string(m.TxStatus))
		case *pgproto3.ParameterStatus:
			reported[m.Name] = m.Value
		case *pgproto3.CommandComplete:
			seen = append(seen, "C "+string(m.CommandTag))
		case *pgproto3.DataRow:
			var vals []string
			for _, v := range m.Values {
				vals = append(vals, string(v))
			}
			seen = append(seen, "D "+strings.Join(vals, "|"))
		case *pgproto3.RowDescription:
			seen = append(seen, "T")
		case *pgproto3.ErrorResponse:
			seen = append(seen, fmt.Sprintf("E %s %s %s: %s (%s; %s) at %d", m.Severity, m.Code, m.Routine, m.Message,
				m.Detail, m.Hint, m.Position))
		case *pgproto3.NoticeResponse:
			seen = append(seen, "N "+m.Code)
		default:
			seen = append(seen, fmt.Sprintf("%T", msg))
		}
	}
	return seen
}

// muxAndDirect connects to db with the same startup parameters through pgmux and
// directly, in simple protocol mode.
func muxAndDirect(t *testing.T, m *mux, db string, params map[string]string) (viaMux, direct *pgx.Conn) {
	t.Helper()
	viaMux = muxtest.Connect(t, withParams(t, m.url(db), params), pgx.QueryExecModeSimpleProtocol, opTimeout)
	direct = muxtest.Connect(t, withParams(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db), params),
		pgx.QueryExecModeSimpleProtocol, opTimeout)
	return viaMux, direct
}

// TestOverlappingReadBacks: a client pipelines a SET (its read-back goes out right
// behind it) and a RESET or another SET of the same name, so the server answers the
// SET's read-back after the later request has gone out, and then starts its next batch
// while the batch's own read-back is still out. A slow first statement makes the overlap
// certain. Each batch runs on a direct connection too; what the client sees must be the
// same, and afterwards, on whichever server it gets next (a pool of two kept busy by
// others), so must its settings: their values, and for settings without a startup value
// their source (a value of the server's default recorded as the client's own would come
// back as a session value).
func TestOverlappingReadBacks(t *testing.T) {
	m := startMux(t, setup{poolSize: 2, directSize: 1})
	db := m.pg.NewDatabase(t, "overlap")
	params := map[string]string{
		"options":  "-c DateStyle=Postgres,MDY -c statement_timeout=7s",
		"TimeZone": "Asia/Tokyo",
	}
	viaMux, direct := muxAndDirect(t, m, db, params)

	ctx, cancel := context.WithCancel(context.Background())
	var busy sync.WaitGroup
	defer func() { cancel(); busy.Wait() }()
	for i := 0; i < 4; i++ {
		c := m.connect(t, db)
		busy.Add(1)
		go func() {
			defer busy.Done()
			for ctx.Err() == nil {
				_, _ = c.Exec(ctx, "SELECT pg_sleep(0.001)")
			}
		}()
	}

	const slow = "SELECT pg_catalog.pg_sleep(0.005); "
	batches := [][]string{
		{slow + "SET work_mem = '5MB'", "RESET work_mem", "SHOW work_mem"},
		{slow + "SET DateStyle = ISO", "RESET DateStyle", "SHOW DateStyle"},
		{slow + "SET work_mem = '6MB'", "SET work_mem = '7MB'", "SHOW work_mem"},
		{slow + "RESET work_mem", "SET work_mem = '8MB'", "SHOW work_mem"},
		{slow + "SET TimeZone = 'UTC'", "RESET ALL", "SHOW TimeZone"},
		{slow + "SET statement_timeout = '1min'", "BEGIN", "RESET statement_timeout", "ROLLBACK", "SHOW statement_timeout"},
		{slow + "SET work_mem = '9MB'", "SET work_mem TO DEFAULT", "SHOW work_mem"},
		{slow + "SELECT pg_catalog.set_config('work_mem', '10MB', false)", "RESET work_mem"},
		{slow + "SET DateStyle = 'SQL, DMY'", "SET statement_timeout = '2min'", "RESET DateStyle", "SHOW DateStyle"},
		{slow + "RESET ALL"},
	}
	const check = `SELECT pg_catalog.current_setting('DateStyle'), pg_catalog.current_setting('TimeZone'),
		pg_catalog.current_setting('statement_timeout'),
		(SELECT s.setting || ' ' || s.source FROM pg_catalog.pg_settings s WHERE s.name = 'work_mem')`
	state := func(c *pgx.Conn) string {
		var a, b, cc, d string
		require.NoError(t, c.QueryRow(ctxT(t), check).Scan(&a, &b, &cc, &d))
		return strings.Join([]string{a, b, cc, d}, " / ")
	}
	pids := map[uint32]bool{}
	for round := 0; round < 25; round++ {
		for i, qs := range batches {
			want, wantReported := pipelined(t, direct, qs...)
			got, gotReported := pipelined(t, viaMux, qs...)
			require.Equal(t, want, got, "round %d batch %d: %q", round, i, qs)
			for name, v := range wantReported {
				require.Equal(t, v, gotReported[name], "round %d batch %d: ParameterStatus %s", round, i, name)
			}
			// Straight away (the batch's read-back may still be out), then on the
			// servers the client gets next.
			for k := 0; k < 3; k++ {
				require.Equal(t, state(direct), state(viaMux), "round %d batch %d (%q), check %d", round, i, qs, k)
				var pid uint32
				require.NoError(t, viaMux.QueryRow(ctxT(t), "SELECT pg_backend_pid()").Scan(&pid))
				pids[pid] = true
			}
		}
	}
	require.GreaterOrEqual(t, len(pids), 2, "the client kept one server: the test proves little")
}
