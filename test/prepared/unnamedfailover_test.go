package prepared

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestUnnamedAfterLostServerAsPostgres: a client of a multi-host database whose server
// is lost keeps its connection, and pgmux answers some of its messages itself (a Query
// in the lost transaction with the termination error, its ROLLBACK or COMMIT; the rest
// of a lost request skipped to its Sync). A Parse of the unnamed statement that gets
// that error drops it, as a Parse PostgreSQL refuses does (exec_parse_message drops the
// old one first). A simple Query pgmux answers drops the unnamed
// statement as one PostgreSQL runs does (exec_simple_query, whatever the Query): pgmux
// kept it and described it, or ran it. A Query skipped with a lost request keeps it, as
// PostgreSQL's skip does. Each case runs through pgmux, losing the server at one point,
// and directly with PostgreSQL's counterpart of the answer pgmux gives there; what
// follows must be the same bytes.
func TestUnnamedAfterLostServerAsPostgres(t *testing.T) {
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	parseA := []step{s("1Z", parse("", "SELECT 1 AS a"), syncMsg)}
	inTx := []step{s("CZ", query("BEGIN")), parseA[0]}
	describe := s("EZ", describeStmt(""), syncMsg)
	for _, tc := range []struct {
		name   string
		before []step // both ways, then the server is lost
		lost   step   // through pgmux after the loss
		direct step   // PostgreSQL's counterpart
		after  []step // both ways, the same bytes
	}{
		{name: "a Query in the lost transaction", before: inTx,
			lost: s("EZ", query("SELECT 2")), direct: s("EZ", query("SELECT 1/0")),
			after: []step{describe, s("CZ", query("ROLLBACK"))}},
		{name: "a Parse first in the lost transaction", before: inTx,
			// Its error is the Parse's own: a failed Parse leaves no unnamed statement.
			lost: s("EZ", parse("", "SELECT 2 AS b"), syncMsg), direct: s("EZ", parse("", "SELECT nosuch"), syncMsg),
			after: []step{describe, s("CZ", query("ROLLBACK")), describe}},
		{name: "its ROLLBACK", before: inTx,
			lost: s("CZ", query("ROLLBACK")), direct: s("CZ", query("ROLLBACK")),
			after: []step{describe}},
		{name: "its COMMIT", before: inTx,
			lost: s("EZ", query("COMMIT")), direct: s("CZ", query("COMMIT")),
			after: []step{describe}},
		{name: "ROLLBACK after the lost request's error", before: inTx,
			lost:   s("EZ", bind("", ""), execute("", 0), syncMsg),
			direct: s("EZ", describeStmt("nosuch"), syncMsg),
			after:  []step{s("CZ", query("ROLLBACK")), describe}},
		{name: "a Query skipped with the lost request", before: append(parseA, s("2", bind("", ""), flushMsg)),
			// The request in flight gets the error; the rest of it is skipped.
			lost:   s("EZ", query("SELECT 3"), syncMsg),
			direct: s("EZ", describeStmt("nosuch"), query("SELECT 3"), syncMsg),
			after:  []step{s("tTZ", describeStmt(""), syncMsg)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pg := pgtest.Start(t)
			db := pg.NewDatabase(t, "unnlost")
			core, logs := observer.New(zapcore.WarnLevel)
			ini := &muxtest.Ini{
				// Two hosts, both pg: a multi-host database, whose clients survive a lost server.
				Databases: []string{fmt.Sprintf("%s = host=%s,%s port=%d,%d", db, pg.Host, pg.Host, pg.Port, pg.Port)},
				Users:     map[string]string{pgtest.AppUser: pgtest.AppPassword},
				PoolSize:  1, // one server connection: the one the client's pid names
			}
			m := muxtest.Start(t, pg, muxtest.Options{Ini: ini,
				Logger: zap.New(zapcore.NewTee(muxtest.TestLogger(t).Core(), core))})
			direct := dialRaw(t, pg.URL(pgtest.AppUser, pgtest.AppPassword, db))
			pooled := dialRaw(t, m.URL(pgtest.AppUser, pgtest.AppPassword, db))
			pid := pooled.query("SELECT pg_backend_pid()")[0]
			sameExchanges(t, direct, pooled, tc.before)

			killer := pg.Connect(t, pgtest.AppUser, pgtest.AppPassword, db)
			_, err := killer.Exec(ctx(t), "SELECT pg_terminate_backend($1::int)", pid)
			require.NoError(t, err)
			for deadline := time.Now().Add(opTimeout); logs.FilterMessage("server connection lost; client kept").Len() == 0; {
				require.True(t, time.Now().Before(deadline), "pgmux did not notice the lost server")
				time.Sleep(10 * time.Millisecond)
			}

			_, kinds := pooled.read(len(tc.lost.want), tc.lost.msgs...)
			require.Equal(t, tc.lost.want, kinds, "through pgmux after the loss")
			_, kinds = direct.read(len(tc.direct.want), tc.direct.msgs...)
			require.Equal(t, tc.direct.want, kinds, "directly")
			sameExchanges(t, direct, pooled, tc.after)
		})
	}
}
