package prepared

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// txExitSends are the ways pgx sends one statement: Exec (always the simple protocol
// without arguments), Query (the connection's mode) and a one-statement Batch.
var txExitSends = []struct {
	name string
	run  func(ctx context.Context, c *pgx.Conn, sql string) (string, error)
}{
	{"Exec", func(ctx context.Context, c *pgx.Conn, sql string) (string, error) {
		tag, err := c.Exec(ctx, sql)
		return tag.String(), err
	}},
	{"Query", func(ctx context.Context, c *pgx.Conn, sql string) (string, error) {
		rows, err := c.Query(ctx, sql)
		if err != nil {
			return "", err
		}
		rows.Close()
		return rows.CommandTag().String(), rows.Err()
	}},
	{"Batch", func(ctx context.Context, c *pgx.Conn, sql string) (string, error) {
		b := &pgx.Batch{}
		b.Queue(sql)
		br := c.SendBatch(ctx, b)
		tag, err := br.Exec()
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		return tag.String(), err
	}},
}

// txExitScript is what a client does around one transaction-exit statement: before it,
// it enters an aborted transaction (or block); after it, it checks the connection.
type txExitScript struct {
	name  string
	other []string // sent first as one Batch by another client (named statements)
	warm  []string // sent first by this client, as the exit is
	enter []string // run with Exec; the last one fails
	exit  string
	after []string // run with Exec after the exit
}

// txExitScripts: each exit statement alone, after another client cached it (it is on
// the server, under pgmux's name), and after this client cached it (pgx binds it with
// no Parse).
var txExitScripts = func() []txExitScript {
	var out []txExitScript
	add := func(exit string, enter, warm, after []string) {
		out = append(out,
			txExitScript{name: exit, enter: enter, exit: exit, after: after},
			txExitScript{name: exit + " prepared by another", other: warm, enter: enter, exit: exit, after: after},
			txExitScript{name: exit + " prepared before", warm: warm, enter: enter, exit: exit, after: after})
	}
	fail := []string{"BEGIN", "SELECT 1/0"}
	for _, exit := range []string{"ROLLBACK", "COMMIT", "ABORT", "END"} {
		add(exit, fail, []string{exit}, nil)
	}
	// AND CHAIN leaves a new transaction open.
	add("ROLLBACK AND CHAIN", fail, []string{"BEGIN", "ROLLBACK AND CHAIN", "ROLLBACK"}, []string{"ROLLBACK"})
	add("ROLLBACK TO SAVEPOINT s", []string{"BEGIN", "SAVEPOINT s", "SELECT 1/0"},
		[]string{"BEGIN", "SAVEPOINT s", "ROLLBACK TO SAVEPOINT s", "ROLLBACK"},
		[]string{"SELECT 2", "ROLLBACK"})
	return out
}()

// txExitRun runs script on c, exiting with send, and returns a line per step: its
// command tag or SQLSTATE, the transaction status after it.
func txExitRun(ctx context.Context, c *pgx.Conn, sc txExitScript,
	send func(context.Context, *pgx.Conn, string) (string, error)) []string {
	var out []string
	note := func(sql, tag string, err error) {
		var pe *pgconn.PgError
		switch {
		case errors.As(err, &pe):
			tag = "ERROR " + pe.Code
		case err != nil:
			tag = "FAIL " + err.Error()
		}
		out = append(out, fmt.Sprintf("%s: %s [%c]", sql, tag, c.PgConn().TxStatus()))
	}
	exec := func(sql string) {
		tag, err := c.Exec(ctx, sql)
		note(sql, tag.String(), err)
	}
	for _, q := range sc.warm {
		tag, err := send(ctx, c, q)
		note("warm "+q, tag, err)
	}
	for _, q := range sc.enter {
		exec(q)
	}
	tag, err := send(ctx, c, sc.exit)
	note("exit "+sc.exit, tag, err)
	for _, q := range sc.after {
		exec(q)
	}
	var one int
	err = c.QueryRow(ctx, "SELECT 1").Scan(&one)
	note("SELECT 1", fmt.Sprint(one), err)
	return out
}

// TestTxExitInAbortedTransaction: a transaction-exit statement (ROLLBACK, COMMIT,
// ROLLBACK TO SAVEPOINT...) sent in an aborted transaction, in every pgx mode and as
// Exec, Query and Batch, answers through pgmux as on PostgreSQL directly, in every
// prepared-statement setting, with one server and with two (where a statement cached
// earlier may be on the other one), and the connection is usable after it. pgmux used
// to answer a Parse of one the server already had (pgx's Batch of ROLLBACK after another
// client's) with a stand-in statement PostgreSQL refuses there: 25P02, and the client's
// transaction stayed aborted.
func TestTxExitInAbortedTransaction(t *testing.T) {
	type xmode struct {
		name string
		mode pgx.QueryExecMode
	}
	named := pgx.QueryExecModeCacheStatement
	all := []xmode{{"CacheStatement", pgx.QueryExecModeCacheStatement},
		{"CacheDescribe", pgx.QueryExecModeCacheDescribe}, {"DescribeExec", pgx.QueryExecModeDescribeExec},
		{"Exec", pgx.QueryExecModeExec}, {"SimpleProtocol", pgx.QueryExecModeSimpleProtocol}}
	setups := []struct {
		name   string
		s      setup
		xmodes []xmode // the subject client's
		other  pgx.QueryExecMode
	}{
		{"cache/1", setup{poolSize: 1}, all, named},
		{"cache/2", setup{poolSize: 2}, all, named},
		{"cache small/2", setup{poolSize: 2, maxStmts: 1}, all, named},
		{"unnamed/1", setup{poolSize: 1, mode: "unnamed"}, all, named},
		{"unnamed/2", setup{poolSize: 2, mode: "unnamed"}, all, named},
		{"cache unnamed/2", setup{poolSize: 2, extra: []string{cacheUnnamed}}, all, named},
		// Without rewriting, pgx's statement names of two clients meet on a server
		// (42P05): only modes that name none.
		{"max 0/1", setup{poolSize: 1, extra: []string{"max_prepared_statements = 0"}}, all[2:], all[2].mode},
	}
	for _, su := range setups {
		t.Run(su.name, func(t *testing.T) {
			m := startMux(t, su.s)
			db := database(t, m.pg, "txexit")
			directURL := m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db)
			for _, xm := range su.xmodes {
				for _, send := range txExitSends {
					for _, sc := range txExitScripts {
						t.Run(xm.name+"/"+send.name+"/"+sc.name, func(t *testing.T) {
							var ans [2][]string
							for i, url := range []string{directURL, m.url(db)} {
								if len(sc.other) > 0 {
									other := muxtest.Connect(t, url, su.other, opTimeout)
									b := &pgx.Batch{}
									for _, q := range sc.other {
										b.Queue(q)
									}
									require.NoError(t, other.SendBatch(ctx(t), b).Close())
									closeConn(other)
								}
								c := muxtest.Connect(t, url, xm.mode, opTimeout)
								ans[i] = txExitRun(ctx(t), c, sc, send.run)
								closeConn(c)
							}
							require.Equal(t, strings.Join(ans[0], "\n"), strings.Join(ans[1], "\n"))
						})
					}
				}
			}
		})
	}
}

// TestTxExitParseInFailedTransaction: a Parse of a transaction-exit statement the server
// already has, in a failed transaction or pipelined behind the request that fails it,
// answers as PostgreSQL's (ParseComplete, not 25P02), and the statement then ends the
// transaction (or the subtransaction). pgmux used to answer such a Parse with a stand-in
// Parse PostgreSQL refuses there. (The unnamed statement is not at stake: pgmux never
// serves transaction control from the cache, cache_unnamed_statements or not.)
func TestTxExitParseInFailedTransaction(t *testing.T) {
	m := startMux(t, setup{poolSize: 1, maxStmts: 5})
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	msgs := func(m ...pgproto3.FrontendMessage) []pgproto3.FrontendMessage { return m }
	// prepared puts q on the server under pgmux's name in a request of its own: a Parse
	// with no server linked is answered by pgmux and sent with the next request.
	prepared := func(q string) step {
		return s("CZ1ZCZ", query("BEGIN"), parse("r1", q), syncMsg, query("ROLLBACK"))
	}
	fail := msgs(query("BEGIN"), query("SELECT 1/0"))
	failSp := msgs(query("BEGIN"), query("SAVEPOINT s"), query("SELECT 1/0"))
	exit := msgs(parse("r2", "ROLLBACK"), bind("", "r2"), execute("", 0), syncMsg)
	cases := map[string][]step{
		"failed": {
			prepared("ROLLBACK"),
			s("CZ", fail[0]),
			s("EZ", fail[1]),
			s("12CZ", exit...),
			s("TDCZ", query("SELECT 1")),
		},
		"pipelined": {
			prepared("ROLLBACK"),
			s("CZEZ12CZ", append(fail, exit...)...),
			s("TDCZ", query("SELECT 1")),
		},
		"COMMIT": {
			prepared("COMMIT"),
			s("CZEZ12CZ", append(fail, parse("r2", "COMMIT"), bind("", "r2"), execute("", 0), syncMsg)...),
			s("TDCZ", query("SELECT 1")),
		},
		"savepoint": {
			prepared("ROLLBACK TO SAVEPOINT s"),
			s("CZCZEZ12CZ", append(failSp, parse("r2", "ROLLBACK TO SAVEPOINT s"), bind("", "r2"), execute("", 0), syncMsg)...),
			s("TDCZCZ", query("SELECT 1"), query("ROLLBACK")),
		},
		"other statements still fail": {
			prepared("COMMIT PREPARED 'x'"),
			s("CZEZEZCZ", append(fail, parse("r2", "COMMIT PREPARED 'x'"), syncMsg, query("ROLLBACK"))...),
			s("EZ", bind("", "r2"), execute("", 0), syncMsg),
		},
		// Its Bind on a server that lacks it (evicted) gets 25P02 from the Bind, as in
		// PostgreSQL, not from a hidden Parse in front of it.
		"other statements, Bind": {
			prepared("COMMIT PREPARED 'x'"),
			s("CZ11111ZCZ", query("BEGIN"), parse("e1", "SELECT 1"), parse("e2", "SELECT 2"),
				parse("e3", "SELECT 3"), parse("e4", "SELECT 4"), parse("e5", "SELECT 5"), syncMsg, query("ROLLBACK")),
			s("CZ", fail[0]),
			s("EZ", fail[1]),
			s("EZ", bind("", "r1"), execute("", 0), syncMsg),
			s("CZ", query("ROLLBACK")),
		},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			db := database(t, m.pg, "txexitparse")
			sameOnOneServer(t, m, db, steps)
		})
	}
}
