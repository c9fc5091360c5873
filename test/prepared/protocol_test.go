package prepared

import (
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

// TestProtocolEdges drives pgmux message by message through the cases drivers depend
// on, in both prepared_statement_modes, over two server connections.
func TestProtocolEdges(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, m *mux, db string)
	}{
		{"parse describe flush then bind (asyncpg)", func(t *testing.T, m *mux, db string) {
			r := m.raw(t, db)
			r.send(parse("__asyncpg_stmt_1__", "SELECT $1::int + 1 AS n, $2::text AS s"), describeStmt("__asyncpg_stmt_1__"), flushMsg)
			got := r.expect("1tT")
			require.Equal(t, []uint32{23, 25}, got[1].(*pgproto3.ParameterDescription).ParameterOIDs)
			// Another client runs meanwhile; the first binds later, in its next request.
			o := m.raw(t, db)
			require.Equal(t, []string{"7"}, o.query("SELECT 7"))
			r.send(bind("", "__asyncpg_stmt_1__", "41", "x"), execute("", 0), syncMsg)
			got = r.expect("2DCZ")
			require.Equal(t, "42", value(t, got[1], 0))
			require.Equal(t, "x", value(t, got[1], 1))
			require.Equal(t, "43", r.run("__asyncpg_stmt_1__", "42", "y"))
		}},
		{"long pipeline before one sync", func(t *testing.T, m *mux, db string) {
			r := m.raw(t, db)
			const n = 60
			var msgs []pgproto3.FrontendMessage
			for i := range n {
				name := fmt.Sprintf("p%d", i)
				msgs = append(msgs, parse(name, fmt.Sprintf("SELECT $1::int * %d", i)), bind("", name, strconv.Itoa(i)), execute("", 0))
			}
			msgs = append(msgs, syncMsg)
			r.send(msgs...)
			for i := range n {
				got := r.expect("12DC")
				require.Equal(t, strconv.Itoa(i*i), value(t, got[2], 0))
			}
			r.expect("Z")
			// Many Bind/Execute of the same statements before one Sync (JDBC batches).
			msgs = msgs[:0]
			for i := range n {
				msgs = append(msgs, bind("", fmt.Sprintf("p%d", i), "2"), execute("", 0))
			}
			r.send(append(msgs, syncMsg)...)
			for i := range n {
				got := r.expect("2DC")
				require.Equal(t, strconv.Itoa(2*i), value(t, got[1], 0))
			}
			r.expect("Z")
		}},
		{"error in the middle of a pipeline", func(t *testing.T, m *mux, db string) {
			r := m.raw(t, db)
			r.send(parse("ok1", "SELECT $1::int"), bind("", "ok1", "1"), execute("", 0),
				parse("div", "SELECT 1 / $1::int"), bind("", "div", "0"), execute("", 0),
				parse("ok2", "SELECT $1::int + 100"), bind("", "ok2", "2"), execute("", 0),
				parse("ok3", "SELECT $1::int + 1000"), bind("", "ok3", "3"), execute("", 0), syncMsg)
			got := r.expect("12DC1EZ")
			require.Equal(t, "22012", errorOf(t, got[5]).Code) // constant-folded at Bind
			require.Equal(t, "1", r.run("ok1", "1"))
			require.Equal(t, "-1", r.run("div", "-1"))
			r.send(parse("ok2", "SELECT $1::int + 100"), syncMsg)
			r.expect("1Z")
			require.Equal(t, "102", r.run("ok2", "2"))
		}},
		{"close of a statement never prepared", func(t *testing.T, m *mux, db string) {
			r := m.raw(t, db)
			r.send(closeStmt("never"), syncMsg)
			r.expect("3Z")
			r.query("BEGIN")
			r.send(closeStmt("never2"), syncMsg)
			r.expect("3Z")
			r.query("COMMIT")
		}},
		{"name reused after close with another query", func(t *testing.T, m *mux, db string) {
			r := m.raw(t, db)
			r.send(parse("q", "SELECT 'first'::text"), syncMsg)
			r.expect("1Z")
			require.Equal(t, "first", r.run("q"))
			r.send(closeStmt("q"), parse("q", "SELECT 'second'::text, $1::int"), syncMsg)
			r.expect("31Z")
			require.Equal(t, "second", r.run("q", "1"))
			r.send(closeStmt("q"), syncMsg)
			r.expect("3Z")
			r.send(bind("", "q"), execute("", 0), syncMsg)
			got := r.expect("EZ")
			require.Equal(t, "26000", errorOf(t, got[0]).Code)
		}},
		{"unnamed statement and portals untouched", func(t *testing.T, m *mux, db string) {
			r := m.raw(t, db)
			r.send(parse("named", "SELECT 'named'::text"), syncMsg)
			r.expect("1Z")
			// The unnamed statement in one request around a named one.
			r.send(parse("", "SELECT $1::int * 3"), bind("", "named"), execute("", 0),
				bind("", "", "5"), describePortal(""), execute("", 0), syncMsg)
			got := r.expect("12DC2TDCZ")
			require.Equal(t, "named", value(t, got[2], 0))
			require.Equal(t, "15", value(t, got[6], 0))
			// Parsed and described in one request, bound in the next (pgx DescribeExec).
			r.send(parse("", "SELECT $1::int + 7"), describeStmt(""), syncMsg)
			r.expect("1tTZ")
			o := m.raw(t, db)
			o.send(parse("", "SELECT 'other'::text"), bind("", ""), execute("", 0), syncMsg)
			o.expect("12DCZ")
			require.Equal(t, "8", r.run("", "1"))
			// A named portal read in parts inside a transaction.
			r.query("BEGIN")
			r.send(parse("series", "SELECT generate_series(1, $1::int)"), bind("cur", "series", "5"),
				execute("cur", 2), syncMsg)
			got = r.expect("12DDsZ")
			require.Equal(t, "2", value(t, got[3], 0))
			r.send(execute("cur", 0), syncMsg)
			got = r.expect("DDDCZ")
			require.Equal(t, "5", value(t, got[2], 0))
			r.query("COMMIT")
		}},
		{"describe statement", func(t *testing.T, m *mux, db string) {
			pc := m.pgconn(t, db)
			sd, err := pc.Prepare(bg(t), "d1", "SELECT $1::int8 AS big, $2::text AS label, now() AS at", nil)
			require.NoError(t, err)
			require.Equal(t, []uint32{20, 25}, sd.ParamOIDs)
			require.Len(t, sd.Fields, 3)
			require.Equal(t, "big", sd.Fields[0].Name)
			require.Equal(t, uint32(20), sd.Fields[0].DataTypeOID)
			require.Equal(t, "label", sd.Fields[1].Name)
			require.Equal(t, uint32(1184), sd.Fields[2].DataTypeOID)
			// A standalone Describe later, on whatever server: same answer.
			r := m.raw(t, db)
			r.send(parse("d2", "INSERT INTO kv VALUES ($1, $2)"), syncMsg)
			r.expect("1Z")
			r.send(describeStmt("d2"), syncMsg)
			got := r.expect("tnZ")
			require.Equal(t, []uint32{25, 25}, got[0].(*pgproto3.ParameterDescription).ParameterOIDs)
		}},
		{"parse and bind on different servers", func(t *testing.T, m *mux, db string) {
			holder := m.connect(t, db, pgx.QueryExecModeSimpleProtocol)
			other := m.connect(t, db, pgx.QueryExecModeSimpleProtocol)
			r := m.raw(t, db)
			// holder keeps one of the two servers; r prepares in a transaction on the other.
			txH, err := holder.Begin(bg(t))
			require.NoError(t, err)
			var pidH int
			require.NoError(t, txH.QueryRow(bg(t), "SELECT pg_backend_pid()").Scan(&pidH))
			r.query("BEGIN")
			pidP := r.query("SELECT pg_backend_pid()")[0]
			r.send(parse("where", "SELECT pg_backend_pid()::text || ':' || $1::text"), describeStmt("where"), syncMsg)
			r.expect("1tTZ")
			r.query("COMMIT")
			// other takes r's server; holder lets its one go; r binds there.
			txO, err := other.Begin(bg(t))
			require.NoError(t, err)
			var pidO int
			require.NoError(t, txO.QueryRow(bg(t), "SELECT pg_backend_pid()").Scan(&pidO))
			require.Equal(t, pidP, strconv.Itoa(pidO))
			require.NoError(t, txH.Commit(bg(t)))
			require.Equal(t, strconv.Itoa(pidH)+":x", r.run("where", "x"))
			require.NoError(t, txO.Commit(bg(t)))
		}},
		{"same name, different queries, concurrently", func(t *testing.T, m *mux, db string) {
			const clients, rounds = 8, 40
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for id := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					pc, err := connectPgconn(m, db)
					if err != nil {
						errs <- err
						return
					}
					defer closePgconn(pc)
					sql := fmt.Sprintf("SELECT %d + $1::int", id*1000)
					if _, err := pc.Prepare(bgCtx(), "S_1", sql, nil); err != nil {
						errs <- err
						return
					}
					for i := range rounds {
						res := pc.ExecPrepared(bgCtx(), "S_1", [][]byte{[]byte(strconv.Itoa(i))}, nil, nil).Read()
						if res.Err != nil {
							errs <- fmt.Errorf("client %d: %w", id, res.Err)
							return
						}
						if got, want := string(res.Rows[0][0]), strconv.Itoa(id*1000+i); got != want {
							errs <- fmt.Errorf("client %d: got %s, want %s", id, got, want)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		}},
	}
	inModes(t, setup{poolSize: 2}, func(t *testing.T, m *mux) {
		db := database(t, m.pg, "proto", `CREATE TABLE kv (k text, v text)`)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) { tc.run(t, m, db) })
		}
	})
}

// TestErrorThenPreparedOnSameServer checks that after an error, statements pgmux
// prepared behind it (skipped by the server) are not believed to exist: on one server,
// a Bind whose hidden Parse was skipped must work in the next request.
func TestErrorThenPreparedOnSameServer(t *testing.T) {
	inModes(t, setup{poolSize: 1}, func(t *testing.T, m *mux) {
		db := database(t, m.pg, "skip")
		r := m.raw(t, db)
		// Prepared while no server is linked: the server has not seen it yet.
		r.send(parse("later", "SELECT $1::int + 1"), syncMsg)
		r.expect("1Z")
		r.send(parse("div", "SELECT 1 / $1::int"), bind("", "div", "0"), execute("", 0), flushMsg)
		got := r.expect("1E")
		require.Equal(t, "22012", errorOf(t, got[1]).Code)
		// The error has been relayed: pgmux sends the hidden Parse of "later" to a server
		// that skips everything up to Sync.
		r.send(bind("", "later", "1"), execute("", 0), syncMsg)
		r.expect("Z")
		require.Equal(t, "3", r.run("later", "2"))
		require.Equal(t, "4", r.run("later", "3"))
	})
}

// TestStatementCollisionSameServer has clients give one name to different queries over
// a single server connection, alternately.
func TestStatementCollisionSameServer(t *testing.T) {
	inModes(t, setup{poolSize: 1}, func(t *testing.T, m *mux) {
		db := database(t, m.pg, "coll")
		a, b := m.raw(t, db), m.raw(t, db)
		a.send(parse("P_0", "SELECT 'a'::text || $1::text"), syncMsg)
		a.expect("1Z")
		b.send(parse("P_0", "SELECT 'b'::text || $1::text"), syncMsg)
		b.expect("1Z")
		for i := range 20 {
			require.Equal(t, "a"+strconv.Itoa(i), a.run("P_0", strconv.Itoa(i)))
			require.Equal(t, "b"+strconv.Itoa(i), b.run("P_0", strconv.Itoa(i)))
		}
	})
}

// TestEvictions cycles 10 statements per client through a cache of 2 per server.
func TestEvictions(t *testing.T) {
	inModes(t, setup{poolSize: 2, maxStmts: 2}, func(t *testing.T, m *mux) {
		db := database(t, m.pg, "evict")
		const clients, rounds, stmts = 6, 5, 10
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for id := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn, err := m.tryConnect(db, pgx.QueryExecModeCacheStatement)
				if err != nil {
					errs <- err
					return
				}
				defer closeConn(conn)
				for r := range rounds {
					for k := range stmts {
						var got int
						sql := fmt.Sprintf("SELECT $1::int + %d", k)
						if err := conn.QueryRow(bgCtx(), sql, id*100+r).Scan(&got); err != nil {
							errs <- fmt.Errorf("client %d stmt %d: %w", id, k, err)
							return
						}
						if got != id*100+r+k {
							errs <- fmt.Errorf("client %d stmt %d: got %d", id, k, got)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		// One pipeline that uses more statements than a server keeps.
		r := m.raw(t, db)
		var msgs []pgproto3.FrontendMessage
		for k := range stmts {
			msgs = append(msgs, parse(fmt.Sprintf("e%d", k), fmt.Sprintf("SELECT %d", k)))
		}
		for k := range stmts {
			msgs = append(msgs, bind("", fmt.Sprintf("e%d", k)), execute("", 0))
		}
		r.send(append(msgs, syncMsg)...)
		r.expect("1111111111")
		for k := range stmts {
			got := r.expect("2DC")
			require.Equal(t, strconv.Itoa(k), value(t, got[1], 0))
		}
		r.expect("Z")
	})
}
