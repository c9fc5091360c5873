package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestQueries covers message shapes beyond one row at a time: a 100 MB row each way,
// COPY in bulk, several statements in one simple Query, an empty query, and an error
// inside a transaction followed by ROLLBACK.
func TestQueries(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t, "queries")
	m := startMux(t, pg, bouncer{PoolMode: "transaction", PoolSize: 2})
	conn := m.Connect(t, pgtest.AppUser, pgtest.AppPassword, db)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("100MB-row-out", func(t *testing.T) {
		const size = 100 << 20
		var got string
		require.NoError(t, conn.QueryRow(ctx, "SELECT repeat('x', $1)", size).Scan(&got))
		require.Len(t, got, size)
		require.Equal(t, size, strings.Count(got, "x"))
	})

	t.Run("20MB-parameter-in", func(t *testing.T) {
		big := bytes.Repeat([]byte("0123456789abcdef"), 20<<20/16)
		var n int
		var md5 string
		require.NoError(t, conn.QueryRow(ctx, "SELECT length($1::bytea), md5($1::bytea)", big).Scan(&n, &md5))
		require.Equal(t, len(big), n)
		var want string
		require.NoError(t, conn.QueryRow(ctx, "SELECT md5(decode(repeat('30313233343536373839616263646566', $1), 'hex'))", len(big)/16).Scan(&want))
		require.Equal(t, want, md5)
	})

	t.Run("copy-from-and-to", func(t *testing.T) {
		_, err := conn.Exec(ctx, "CREATE TABLE c (id int, payload text)")
		require.NoError(t, err)
		const rows = 100000
		n, err := conn.CopyFrom(ctx, pgx.Identifier{"c"}, []string{"id", "payload"},
			pgx.CopyFromFunc(func() func() ([]any, error) {
				i := 0
				return func() ([]any, error) {
					if i == rows {
						return nil, nil
					}
					i++
					return []any{i, strings.Repeat("p", i%200)}, nil
				}
			}()))
		require.NoError(t, err)
		require.EqualValues(t, rows, n)
		var buf bytes.Buffer
		tag, err := conn.PgConn().CopyTo(ctx, &buf, "COPY (SELECT id, payload FROM c ORDER BY id) TO STDOUT")
		require.NoError(t, err)
		require.EqualValues(t, rows, tag.RowsAffected())
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		require.Len(t, lines, rows)
		require.Equal(t, "1\tp", lines[0])
		require.Equal(t, "100000\t"+strings.Repeat("p", 100000%200), lines[rows-1])
	})

	t.Run("multi-statement-simple-query", func(t *testing.T) {
		results, err := conn.PgConn().Exec(ctx, "SELECT 1; SELECT 2, 'two'; SELECT 3").ReadAll()
		require.NoError(t, err)
		require.Len(t, results, 3)
		require.Equal(t, "1", string(results[0].Rows[0][0]))
		require.Equal(t, "two", string(results[1].Rows[0][1]))
		require.Equal(t, "3", string(results[2].Rows[0][0]))
	})

	t.Run("empty-query", func(t *testing.T) {
		for _, sql := range []string{";", "", " ; ; "} {
			_, err := conn.PgConn().Exec(ctx, sql).ReadAll()
			require.NoError(t, err, "%q", sql)
		}
		var n int
		require.NoError(t, conn.QueryRow(ctx, "SELECT 9").Scan(&n))
		require.Equal(t, 9, n)
	})

	t.Run("error-in-transaction-then-rollback", func(t *testing.T) {
		for _, proto := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
			_, err := conn.Exec(ctx, "BEGIN", proto)
			require.NoError(t, err)
			_, err = conn.Exec(ctx, "SELECT 1/0", proto)
			require.Equal(t, "22012", muxtest.PgError(t, err).Code)
			require.Equal(t, byte('E'), conn.PgConn().TxStatus())
			_, err = conn.Exec(ctx, "SELECT 1", proto)
			require.Equal(t, "25P02", muxtest.PgError(t, err).Code)
			_, err = conn.Exec(ctx, "ROLLBACK", proto)
			require.NoError(t, err)
			require.Equal(t, byte('I'), conn.PgConn().TxStatus())
			var n int
			require.NoError(t, conn.QueryRow(ctx, "SELECT 4", proto).Scan(&n))
			require.Equal(t, 4, n)
		}
	})
}
