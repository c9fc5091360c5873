package prepared

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// evicting prepares and describes the statements (name, text) in one request, the last
// one a throwaway: with max_prepared_statements = 1 none of the others stays on the
// server, so their next use prepares them there again.
func evicting(stmts ...[2]string) step {
	var msgs []pgproto3.FrontendMessage
	var want strings.Builder
	for _, s := range stmts {
		msgs = append(msgs, parse(s[0], s[1]), describeStmt(s[0]))
		want.WriteString("1t?")
	}
	msgs = append(msgs, parse("evictor", "SELECT 'evictor'"), syncMsg)
	return step{msgs, want.String() + "1Z"}
}

// withKinds fills in the answers' kinds a step leaves open ('?': T or n).
func withKinds(s step, kinds string) step {
	s.want = kinds
	return s
}

// TestDescribeInFailedTransactionAsPostgres: a Describe of a statement the server lacks,
// in a failed transaction (known, or reached by a request pipelined in front of it),
// answers as PostgreSQL's, byte for byte: PostgreSQL describes a statement that returns
// no rows there (ParameterDescription, NoData) and refuses one that does. pgmux used to
// prepare it first with a Parse the server refuses in that state (25P02), so an INSERT's
// Describe got "EZ" where PostgreSQL sends "tnZ". pgmux answers it from the server's
// description of the statement at an earlier Describe; a Describe of a portal after a
// Bind (of a ROLLBACK) is PostgreSQL's too.
func TestDescribeInFailedTransactionAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 1, maxStmts: 1})
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	ins := [2]string{"ins", "INSERT INTO t VALUES ($1, $2)"}
	warm := withKinds(evicting(ins, [2]string{"rb", "ROLLBACK"}), "1tn1tn1Z")
	fail := []pgproto3.FrontendMessage{query("BEGIN"), query("SELECT 1/0")}
	cases := map[string][]step{
		"failed": {
			warm,
			s("CZEZ", fail...),
			s("tnZ", describeStmt("ins"), syncMsg),
			s("tntnZ", describeStmt("ins"), describeStmt("ins"), syncMsg),
			s("CZ", query("ROLLBACK")),
			s("2CZ", bind("", "ins", "1", "x"), execute("", 0), syncMsg),
		},
		"pipelined behind the failing query": {
			warm,
			s("CZEZtnZCZ", append(fail, describeStmt("ins"), syncMsg, query("ROLLBACK"))...),
			s("2CZ", bind("", "ins", "2", "y"), execute("", 0), syncMsg),
		},
		"pipelined, the transaction fine": {
			warm,
			s("CZTDCZtn2CZCZ", query("BEGIN"), query("SELECT 1"), describeStmt("ins"),
				bind("", "ins", "3", "z"), execute("", 0), syncMsg, query("COMMIT")),
		},
		"declared types": {
			withKinds(evicting([2]string{"typed", "UPDATE t SET b = $2 WHERE a = $1"}), "1tn1Z"),
			s("CZEZtnZCZ", append(fail, describeStmt("typed"), syncMsg, query("ROLLBACK"))...),
		},
		"portal of a ROLLBACK": {
			warm,
			s("CZEZ", fail...),
			s("2nCZ", bind("p", "rb"), describePortal("p"), execute("p", 0), syncMsg),
			s("2CZ", bind("", "ins", "4", "w"), execute("", 0), syncMsg),
		},
	}
	cases["declared types"][0].msgs[0] = parse("typed", "UPDATE t SET b = $2 WHERE a = $1", 20, 1043)
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			db := database(t, m.pg, "faileddesc", "CREATE TABLE t (a int, b text)")
			sameOnOneServer(t, m, db, steps)
		})
	}
	// A statement that returns rows: PostgreSQL refuses its Describe with 25P02 from
	// exec_describe_statement_message, pgmux's from its Parse (see README): the same
	// error but for its routine and line fields.
	t.Run("rows", func(t *testing.T) {
		db := database(t, m.pg, "faileddesc")
		direct := dialRaw(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db))
		sameAnswersLoose(t, direct, m.raw(t, db), []step{
			withKinds(evicting([2]string{"sel", "SELECT $1::int AS v"}), "1tT1Z"),
			s("CZEZEZCZ", append(fail, describeStmt("sel"), syncMsg, query("ROLLBACK"))...),
		})
	})
}

// TestBindPipelinedInFailedTransactionAsPostgres: a Bind of a statement the server
// lacks, pipelined behind the request that fails the transaction, gets PostgreSQL's
// 25P02 from the Bind, byte for byte, and the rest is skipped until Sync. pgmux used to
// prepare the statement in front of the Bind, and the server's refusal of that Parse came
// from exec_parse_message. Where the transaction is not failed when the server reads it
// (the request in front succeeded, or a ROLLBACK earlier in the request ended it), the
// Bind runs, in a transaction as often as asked.
func TestBindPipelinedInFailedTransactionAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 1, maxStmts: 1})
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	warm := withKinds(evicting([2]string{"a", "SELECT $1::int AS v"}, [2]string{"b", "INSERT INTO t VALUES ($1)"},
		[2]string{"rb", "ROLLBACK"}), "1tT1tn1tn1Z")
	fail := []pgproto3.FrontendMessage{query("BEGIN"), query("SELECT 1/0")}
	cases := map[string][]step{
		"unnamed portal": {
			warm,
			s("CZEZEZCZ", append(fail, bind("", "a", "1"), describePortal(""), execute("", 0), syncMsg, query("ROLLBACK"))...),
			s("2DCZ", bind("", "a", "2"), execute("", 0), syncMsg),
		},
		"named portal, no rows": {
			warm,
			s("CZEZEZCZ", append(fail, bind("p", "b", "1"), describePortal("p"), execute("p", 0), syncMsg, query("ROLLBACK"))...),
		},
		"two requests": {
			warm,
			s("CZEZEZEZCZ", append(fail, bind("", "a", "1"), execute("", 0), syncMsg,
				bind("", "b", "1"), execute("", 0), syncMsg, query("ROLLBACK"))...),
		},
		"the transaction fine": {
			warm,
			s("CZTDCZ2TDCZ2CZ2TDCZCZ", query("BEGIN"), query("SELECT 1"),
				bind("p", "a", "5"), describePortal("p"), execute("p", 0), syncMsg,
				bind("q", "b", "6"), execute("q", 0), syncMsg,
				bind("r", "a", "7"), describePortal("r"), execute("r", 0), syncMsg, query("COMMIT")),
			s("TDCZ", query("SELECT count(*) FROM t")),
		},
		"after a ROLLBACK in the request": {
			warm,
			s("CZEZ", fail...),
			s("2C2CZ", bind("", "rb"), execute("", 0), bind("", "b", "8"), execute("", 0), syncMsg),
			s("TDCZ", query("SELECT count(*) FROM t")),
		},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			db := database(t, m.pg, "failedpipe", "CREATE TABLE t (a int)")
			sameOnOneServer(t, m, db, steps)
		})
	}
}

// TestFailedTransactionPgconn: what pgx's pgconn gets, directly and through pgmux, in a
// failed transaction for statements the server lacks: a pipeline's ExecPrepared behind
// the query that failed (25P02 from exec_bind_message), and a Describe of a statement
// that returns no rows (its parameter types).
func TestFailedTransactionPgconn(t *testing.T) {
	m := startMux(t, setup{poolSize: 1, maxStmts: 1})
	db := database(t, m.pg, "failedpgconn", "CREATE TABLE t (a int8, b text)")
	run := func(url string) []string {
		c := ctx(t)
		pc, err := pgconn.Connect(c, url)
		require.NoError(t, err)
		defer closePgconn(pc)
		var out []string
		note := func(what string, err error) {
			var pe *pgconn.PgError
			if errors.As(err, &pe) {
				out = append(out, fmt.Sprintf("%s: %s %s %s", what, pe.Code, pe.Routine, pe.Message))
			} else {
				out = append(out, fmt.Sprintf("%s: %v", what, err))
			}
		}
		for _, st := range [][2]string{{"ins", "INSERT INTO t VALUES ($1, $2)"}, {"sel", "SELECT $1::int AS v"}, {"evict", "SELECT 0"}} {
			_, err := pc.Prepare(c, st[0], st[1], nil)
			require.NoError(t, err)
		}
		require.NoError(t, pc.Exec(c, "BEGIN").Close())
		p := pc.StartPipeline(c)
		p.SendQueryParams("SELECT 1/0", nil, nil, nil, nil)
		p.SendPipelineSync()
		p.SendQueryPrepared("sel", [][]byte{[]byte("1")}, nil, nil)
		p.SendPipelineSync()
		require.NoError(t, p.Sync())
		for i := range 4 {
			res, err := p.GetResults()
			if rr, ok := res.(*pgconn.ResultReader); ok {
				_, err = rr.Close()
			}
			note(fmt.Sprint("pipeline ", i), err)
		}
		require.NoError(t, p.Close())
		// A Describe of the INSERT, which the server lost (max_prepared_statements = 1).
		fe := pc.Frontend()
		fe.SendDescribe(&pgproto3.Describe{ObjectType: 'S', Name: "ins"})
		fe.SendSync(&pgproto3.Sync{})
		require.NoError(t, fe.Flush())
		for {
			msg, err := pc.ReceiveMessage(c)
			require.NoError(t, err)
			switch msg := msg.(type) {
			case *pgproto3.ParameterDescription:
				out = append(out, fmt.Sprint("describe params ", msg.ParameterOIDs))
			case *pgproto3.ErrorResponse:
				out = append(out, "describe error "+msg.Code+" "+msg.Routine)
			default:
				out = append(out, fmt.Sprintf("describe %T", msg))
			}
			if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
		note("rollback", pc.Exec(c, "ROLLBACK").Close())
		rr := pc.ExecPrepared(context.Background(), "ins", [][]byte{[]byte("1"), []byte("x")}, nil, nil).Read()
		note("insert "+rr.CommandTag.String(), rr.Err)
		return out
	}
	direct := run(m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db))
	require.Contains(t, strings.Join(direct, "\n"), "pipeline 2: 25P02 exec_bind_message")
	require.Contains(t, strings.Join(direct, "\n"), "describe params [20 25]")
	require.Equal(t, strings.Join(direct, "\n"), strings.Join(run(m.url(db)), "\n"))
}
