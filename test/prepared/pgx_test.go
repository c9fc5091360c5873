package prepared

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// pgxModes are the pgx query modes that prepare statements: named ones cached per
// connection, and the unnamed one described in one round trip and bound in the next.
var pgxModes = []struct {
	name string
	mode pgx.QueryExecMode
}{
	{"CacheStatement", pgx.QueryExecModeCacheStatement},
	{"CacheDescribe", pgx.QueryExecModeCacheDescribe},
	{"DescribeExec", pgx.QueryExecModeDescribeExec},
}

// TestPgxConcurrent runs 100 pgx connections over 5 server connections: every goroutine
// runs many different parameterized queries, and inserts rows tagged with its id inside
// explicit transactions and reads back exactly its own. A statement bound on a server
// where another client's statement of the same name lives, or a server handed to two
// clients, shows up as wrong rows or an error.
func TestPgxConcurrent(t *testing.T) {
	for _, pm := range modes {
		for _, xm := range pgxModes {
			t.Run(pm+"/"+xm.name, func(t *testing.T) {
				m := startMux(t, setup{poolSize: 5, mode: pm})
				db := database(t, m.pg, "pgx", `CREATE TABLE items (client int, seq int, note text)`)
				const clients, rounds = 100, 8
				var wg sync.WaitGroup
				errs := make(chan error, clients)
				for id := range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := pgxClient(m, db, xm.mode, id, rounds); err != nil {
							errs <- fmt.Errorf("client %d: %w", id, err)
						}
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Error(err)
				}
				conn := m.connect(t, db, xm.mode)
				var n int
				require.NoError(t, conn.QueryRow(ctx(t), `SELECT count(*) FROM items`).Scan(&n))
				require.Equal(t, clients*rounds*3, n)
			})
		}
	}
}

// pgxClient is one goroutine of TestPgxConcurrent.
func pgxClient(m *mux, db string, mode pgx.QueryExecMode, id, rounds int) error {
	conn, err := m.tryConnect(db, mode)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	c, cancel := context.WithTimeout(context.Background(), 2*opTimeout)
	defer cancel()
	for r := range rounds {
		// Different statements, some shared by every client, some this client's own.
		var sum, k int
		if err := conn.QueryRow(c, `SELECT $1::int + $2::int`, id, r).Scan(&sum); err != nil {
			return fmt.Errorf("sum: %w", err)
		}
		if sum != id+r {
			return fmt.Errorf("sum: got %d, want %d", sum, id+r)
		}
		if err := conn.QueryRow(c, fmt.Sprintf(`SELECT $1::int * %d`, id%7+1), r).Scan(&k); err != nil {
			return fmt.Errorf("product: %w", err)
		}
		if k != r*(id%7+1) {
			return fmt.Errorf("product: got %d, want %d", k, r*(id%7+1))
		}
		var s string
		if err := conn.QueryRow(c, `SELECT $1::text || '-' || $2::int`, "c", id).Scan(&s); err != nil {
			return fmt.Errorf("concat: %w", err)
		}
		if want := fmt.Sprintf("c-%d", id); s != want {
			return fmt.Errorf("concat: got %q, want %q", s, want)
		}
		err := pgx.BeginFunc(c, conn, func(tx pgx.Tx) error {
			for i := range 3 {
				if _, err := tx.Exec(c, `INSERT INTO items (client, seq, note) VALUES ($1, $2, $3)`,
					id, r*3+i, fmt.Sprintf("n%d", i)); err != nil {
					return fmt.Errorf("insert: %w", err)
				}
			}
			var n int
			if err := tx.QueryRow(c, `SELECT count(*) FROM items WHERE client = $1`, id).Scan(&n); err != nil {
				return fmt.Errorf("count in tx: %w", err)
			}
			if n != (r+1)*3 {
				return fmt.Errorf("count in tx: got %d, want %d", n, (r+1)*3)
			}
			return nil
		})
		if err != nil {
			return err
		}
		rows, err := conn.Query(c, `SELECT client, seq FROM items WHERE client = $1 ORDER BY seq`, id)
		if err != nil {
			return fmt.Errorf("read back: %w", err)
		}
		seqs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (int, error) {
			var cl, seq int
			if err := row.Scan(&cl, &seq); err != nil {
				return 0, err
			}
			if cl != id {
				return 0, fmt.Errorf("row of client %d", cl)
			}
			return seq, nil
		})
		if err != nil {
			return fmt.Errorf("read back: %w", err)
		}
		if len(seqs) != (r+1)*3 {
			return fmt.Errorf("read back: %d rows, want %d", len(seqs), (r+1)*3)
		}
		for i, seq := range seqs {
			if seq != i {
				return fmt.Errorf("read back: row %d has seq %d", i, seq)
			}
		}
	}
	return nil
}
