package prepared

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
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
