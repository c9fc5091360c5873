package prepared

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// staleCode is PostgreSQL's answer to a statement whose result type changed under it:
// "cached plan must not change result type".
const staleCode = "0A000"

// TestAlterTableBetweenExecutions adds a column between executions of a prepared
// SELECT *. The first execution after it may fail once with 0A000 (as it does on
// PostgreSQL directly); pgmux must then prepare the statement anew, so the next ones
// succeed and see the new column.
func TestAlterTableBetweenExecutions(t *testing.T) {
	inModes(t, setup{poolSize: 2}, func(t *testing.T, m *mux) {
		db := database(t, m.pg, "alter", `CREATE TABLE t (a int)`, `INSERT INTO t VALUES (1)`)
		t.Run("protocol", func(t *testing.T) {
			r := m.raw(t, db)
			r.send(parse("all", "SELECT * FROM t"), syncMsg)
			r.expect("1Z")
			require.Equal(t, "1", r.run("all"))
			admin := m.connect(t, db, pgx.QueryExecModeSimpleProtocol)
			for i, col := range []string{"b", "c"} {
				_, err := admin.Exec(bg(t), fmt.Sprintf("ALTER TABLE t ADD COLUMN %s int DEFAULT %d", col, i+2))
				require.NoError(t, err)
				failed := 0
				for range 3 {
					r.send(bind("", "all"), execute("", 0), syncMsg)
					m1 := r.recv()
					if kindOf(m1) == 'E' {
						require.Equal(t, staleCode, errorOf(t, m1).Code)
						r.expect("Z")
						failed++
						continue
					}
					got := r.expect("DCZ")
					require.Len(t, got[0].(*pgproto3.DataRow).Values, i+2)
				}
				require.LessOrEqual(t, failed, 1, "0A000 at most once")
			}
		})
		t.Run("pgx clients", func(t *testing.T) {
			conns := make([]*pgx.Conn, 4)
			for i := range conns {
				conns[i] = m.connect(t, db, pgx.QueryExecModeCacheStatement)
			}
			admin := m.connect(t, db, pgx.QueryExecModeSimpleProtocol)
			for step, col := range []string{"d", "e"} {
				for _, c := range conns {
					_, err := c.Exec(bg(t), "SELECT * FROM t")
					require.NoError(t, err)
				}
				_, err := admin.Exec(bg(t), fmt.Sprintf("ALTER TABLE t ADD COLUMN %s int", col))
				require.NoError(t, err)
				for ci, c := range conns {
					failed := 0
					for range 3 {
						rows, err := c.Query(bg(t), "SELECT * FROM t")
						if err == nil {
							var vals []any
							for rows.Next() {
								vals, err = rows.Values()
								if err != nil {
									break
								}
							}
							rows.Close()
							if err == nil {
								err = rows.Err()
							}
							if err == nil {
								require.Len(t, vals, 4+step, "client %d", ci)
								continue
							}
						}
						// Another client may have prepared the shared server statement anew
						// already; then pgx's cached description is what is out of date and
						// PostgreSQL refuses the Bind's result formats (08P01) instead.
						var pe *pgconn.PgError
						require.True(t, errors.As(err, &pe) && (pe.Code == staleCode || pe.Code == "08P01"),
							"client %d: %v", ci, err)
						failed++
					}
					require.LessOrEqual(t, failed, 1, "client %d: 0A000 at most once", ci)
				}
			}
		})
	})
}

// TestAlterTableRetried: when the result type of a statement pgmux prepared changes and
// the failed request can be sent again unchanged (nothing ran yet, no explicit
// transaction, the client describes the result), pgmux prepares the statement anew and
// retries: the client sees the new rows and no error. Where a retry would not be what a
// direct connection does, the client gets PostgreSQL's 0A000 once.
func TestAlterTableRetried(t *testing.T) {
	m := startMux(t, setup{poolSize: 1, extra: []string{"admin_users = " + pgtest.AppUser}})
	db := database(t, m.pg, "retry", `CREATE TABLE t (a int)`, `INSERT INTO t VALUES (1)`)
	admin := m.connect(t, db, pgx.QueryExecModeSimpleProtocol)
	cols := 1
	addColumn := func(t *testing.T) {
		t.Helper()
		cols++
		_, err := admin.Exec(bg(t), fmt.Sprintf("ALTER TABLE t ADD COLUMN c%d int DEFAULT %d", cols, cols))
		require.NoError(t, err)
	}
	r := m.raw(t, db)
	r.send(parse("all", "SELECT * FROM t"), parse("one", "SELECT 1"), syncMsg)
	r.expect("11Z")
	require.Equal(t, "1", r.run("all"))

	t.Run("bind, describe portal, execute", func(t *testing.T) {
		addColumn(t)
		r.send(bind("", "all"), describePortal(""), execute("", 0), syncMsg)
		got := r.expect("2TDCZ")
		require.Len(t, got[1].(*pgproto3.RowDescription).Fields, cols)
		require.Len(t, got[2].(*pgproto3.DataRow).Values, cols)
	})
	t.Run("describe statement", func(t *testing.T) {
		addColumn(t)
		r.send(describeStmt("all"), syncMsg)
		got := r.expect("tTZ")
		require.Len(t, got[1].(*pgproto3.RowDescription).Fields, cols)
		r.send(bind("", "all"), execute("", 0), syncMsg)
		require.Len(t, r.expect("2DCZ")[1].(*pgproto3.DataRow).Values, cols)
	})
	failsOnce := func(t *testing.T, msgs []pgproto3.FrontendMessage, before string) {
		t.Helper()
		r.send(msgs...)
		r.expect(before)
		require.Equal(t, staleCode, errorOf(t, r.recv()).Code)
		r.expect("Z")
		// Marked stale: the next use prepares it again.
		r.send(bind("", "all"), describePortal(""), execute("", 0), syncMsg)
		require.Len(t, r.expect("2TDCZ")[2].(*pgproto3.DataRow).Values, cols)
	}
	t.Run("no describe: the client's cached row shape would be wrong", func(t *testing.T) {
		addColumn(t)
		failsOnce(t, []pgproto3.FrontendMessage{bind("", "all"), execute("", 0), syncMsg}, "")
	})
	t.Run("an execute ran earlier in the request", func(t *testing.T) {
		addColumn(t)
		failsOnce(t, []pgproto3.FrontendMessage{bind("", "one"), execute("", 0),
			bind("", "all"), describePortal(""), execute("", 0), syncMsg}, "2DC")
	})
	t.Run("a portal bound earlier in the request", func(t *testing.T) {
		// The error aborts the implicit transaction and the portal with it: replaying
		// only from the failed Bind would make the later Execute of p1 fail instead.
		addColumn(t)
		failsOnce(t, []pgproto3.FrontendMessage{bind("p1", "one"),
			bind("", "all"), describePortal(""), execute("", 0), execute("p1", 0), syncMsg}, "2")
	})
	t.Run("binary parameter of an inferred type", func(t *testing.T) {
		// Prepared anew, $1 would be inferred as the column's new type and the 8 bytes
		// encoded as bigint read as float8: no retry, PostgreSQL's error instead.
		_, err := admin.Exec(bg(t), `CREATE TABLE n (a bigint); INSERT INTO n VALUES (1), (4607182418800017408)`)
		require.NoError(t, err)
		r.send(parse("byval", "SELECT * FROM n WHERE a = $1"), syncMsg)
		r.expect("1Z")
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, 4607182418800017408)
		bin := &pgproto3.Bind{PreparedStatement: "byval", ParameterFormatCodes: []int16{1}, Parameters: [][]byte{v}}
		r.send(bin, describePortal(""), execute("", 0), syncMsg)
		require.Equal(t, "4607182418800017408", string(r.expect("2TDCZ")[2].(*pgproto3.DataRow).Values[0]))
		_, err = admin.Exec(bg(t), `ALTER TABLE n ALTER a TYPE float8`)
		require.NoError(t, err)
		r.send(bin, describePortal(""), execute("", 0), syncMsg)
		require.Equal(t, staleCode, errorOf(t, r.recv()).Code)
		r.expect("Z")
	})
	t.Run("inside an explicit transaction", func(t *testing.T) {
		addColumn(t)
		r.query("BEGIN")
		r.send(bind("", "all"), describePortal(""), execute("", 0), syncMsg)
		require.Equal(t, staleCode, errorOf(t, r.recv()).Code)
		require.Equal(t, byte('E'), r.expect("Z")[0].(*pgproto3.ReadyForQuery).TxStatus)
		r.query("ROLLBACK")
		r.send(bind("", "all"), describePortal(""), execute("", 0), syncMsg)
		require.Len(t, r.expect("2TDCZ")[2].(*pgproto3.DataRow).Values, cols)
	})
	t.Run("retries are counted", func(t *testing.T) {
		adm := m.connect(t, "pgbouncer", pgx.QueryExecModeSimpleProtocol)
		p := rowOf(t, showRows(t, adm, "SHOW PREPARED"), "database", db)
		require.Equal(t, int64(2), p["retries"], "%v", p)
	})
}

// TestPgbenchPreparedUnderDDL runs pgbench -M prepared with a SELECT * while columns are
// added to and dropped from the table under it. libpq describes every result (Bind,
// Describe, Execute, Sync), so each 0A000 is retried with the statement prepared anew:
// no transaction fails. (Directly against PostgreSQL, pgbench aborts its clients on the
// first 0A000.)
func TestPgbenchPreparedUnderDDL(t *testing.T) {
	m := startMux(t, setup{poolSize: 4, extra: []string{"admin_users = " + pgtest.AppUser}})
	pgbench := m.pg.RequireBin(t, "pgbench")
	db := database(t, m.pg, "ddl", `CREATE TABLE t (a int)`, `INSERT INTO t VALUES (1)`)
	script := filepath.Join(t.TempDir(), "select.sql")
	require.NoError(t, os.WriteFile(script, []byte("SELECT * FROM t;\n"), 0o644))
	admin := m.connect(t, db, pgx.QueryExecModeSimpleProtocol)
	done := make(chan struct{})
	ddl := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 200 && err == nil; i++ {
			select {
			case <-done:
				ddl <- nil
				return
			case <-time.After(50 * time.Millisecond):
			}
			if i%2 == 0 {
				_, err = admin.Exec(bgCtx(), fmt.Sprintf("ALTER TABLE t ADD COLUMN c%d int DEFAULT %d", i, i))
			} else {
				_, err = admin.Exec(bgCtx(), fmt.Sprintf("ALTER TABLE t DROP COLUMN c%d", i-1))
			}
		}
		ddl <- err
	}()
	out, err := muxtest.RunCmd(t, 2*time.Minute, m.env(db), pgbench,
		"-n", "-M", "prepared", "-c", "8", "-j", "2", "-T", "4", "-f", script)
	close(done)
	require.NoError(t, <-ddl)
	require.NoError(t, err, out)
	require.NotContains(t, out, "aborted", out)
	failed := regexp.MustCompile(`number of failed transactions: (\d+)`).FindStringSubmatch(out)
	if failed != nil {
		require.Equal(t, "0", failed[1], out)
	}
	adm := m.connect(t, "pgbouncer", pgx.QueryExecModeSimpleProtocol)
	p := rowOf(t, showRows(t, adm, "SHOW PREPARED"), "database", db)
	t.Logf("pgbench: %s; SHOW PREPARED: %v", regexp.MustCompile(`tps = [0-9.]+`).FindString(out), p)
	require.Positive(t, p["retries"].(int64), "the DDL must have hit prepared statements")
}
