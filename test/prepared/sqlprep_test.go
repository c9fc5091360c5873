package prepared

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestSQLPrepareManyClients: 100 clients over 5 servers use SQL PREPARE, EXECUTE and
// DEALLOCATE through the simple protocol, each with its own statement texts under the
// same names, in and out of transactions, alone and in Queries of several statements. Every result is the client's own, no client is
// pinned (a direct pool of one slot would make pinned clients wait and fail), and the
// names behave as PostgreSQL's: DEALLOCATE of a missing one is 26000, a second PREPARE
// is 42P05.
//
// The same with the extended protocol (sqlprep_ext.go): pgx's QueryExecModeExec sends each
// statement as an unnamed Parse, its statement cache as a named one; the Queries of
// several statements go as simple Queries.
func TestSQLPrepareManyClients(t *testing.T) {
	for name, mode := range map[string]pgx.QueryExecMode{"simple": pgx.QueryExecModeSimpleProtocol,
		"exec": pgx.QueryExecModeExec, "cache_statement": pgx.QueryExecModeCacheStatement} {
		t.Run(name, func(t *testing.T) { testSQLPrepareManyClients(t, mode) })
	}
}

func testSQLPrepareManyClients(t *testing.T, mode pgx.QueryExecMode) {
	m := startMux(t, setup{poolSize: 5, extra: []string{
		"admin_users = " + pgtest.AppUser,
		"direct_pool_size = 1",
		"query_wait_timeout = 20", // a pinned client holds the one direct slot for good: the others fail
	}})
	db := database(t, m.pg, "sqlprep", "CREATE TABLE items (id int PRIMARY KEY, owner int)",
		"INSERT INTO items SELECT g, g % 100 FROM generate_series(1, 1000) g")
	const clients, rounds = 100, 20
	conns := make([]*pgx.Conn, clients)
	for i := range conns {
		conns[i] = m.connect(t, db, mode)
	}
	// Queries of several statements go as simple Queries whatever the mode.
	modeFor := func(sql string) pgx.QueryExecMode {
		if strings.Contains(sql, ";") {
			return pgx.QueryExecModeSimpleProtocol
		}
		return mode
	}
	one := func(conn *pgx.Conn, sql string) (string, error) {
		var v string
		err := conn.QueryRow(bgCtx(), sql, modeFor(sql)).Scan(&v)
		return v, err
	}
	exec := func(conn *pgx.Conn, sql string) error {
		if modeFor(sql) == pgx.QueryExecModeSimpleProtocol {
			_, err := conn.Exec(bgCtx(), sql)
			return err
		}
		// Query, not Exec: pgx sends an Exec without arguments as a simple Query.
		rows, err := conn.Query(bgCtx(), sql)
		if err != nil {
			return err
		}
		rows.Close()
		return rows.Err()
	}
	code := func(err error) string {
		if pe, ok := err.(interface{ SQLState() string }); ok {
			return pe.SQLState()
		}
		return fmt.Sprint(err)
	}
	client := func(i int, conn *pgx.Conn) error {
		// Own texts under shared names: the constant and the owner differ per client.
		prep := []string{
			fmt.Sprintf("PREPARE add (int) AS SELECT ($1 + %d)::text", i*1000),
			fmt.Sprintf("PREPARE mine AS SELECT count(*)::text FROM items WHERE owner = %d", i),
			fmt.Sprintf(`PREPARE "Tagged" (text, int) AS SELECT $1 || '-%d-' || $2`, i),
		}
		for _, p := range prep {
			if err := exec(conn, p); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		if err := exec(conn, prep[0]); code(err) != "42P05" {
			return fmt.Errorf("second PREPARE add: want 42P05, got %v", err)
		}
		for r := range rounds {
			if v, err := one(conn, fmt.Sprintf("EXECUTE add(%d)", r)); err != nil || v != strconv.Itoa(i*1000+r) {
				return fmt.Errorf("round %d EXECUTE add: %q %v", r, v, err)
			}
			if v, err := one(conn, "EXECUTE mine"); err != nil || v != "10" {
				return fmt.Errorf("round %d EXECUTE mine: %q %v", r, v, err)
			}
			// In a Query of several statements (sqlmulti.go): the first result is read.
			q := fmt.Sprintf(`EXECUTE add(%d); EXECUTE "Tagged"('m', 1); SELECT 'x'`, r+1)
			if v, err := one(conn, q); err != nil || v != strconv.Itoa(i*1000+r+1) {
				return fmt.Errorf("round %d %s: %q %v", r, q, v, err)
			}
			if r%4 == 1 { // inside a transaction
				if err := exec(conn, "BEGIN"); err != nil {
					return err
				}
				v, err := one(conn, fmt.Sprintf(`EXECUTE "Tagged"('r', %d)`, r))
				if err != nil || v != fmt.Sprintf("r-%d-%d", i, r) {
					return fmt.Errorf("round %d EXECUTE Tagged: %q %v", r, v, err)
				}
				if err := exec(conn, "COMMIT"); err != nil {
					return err
				}
			}
			if r%5 == 2 { // forget and prepare again, with another text
				dealloc := "DEALLOCATE add"
				if r%10 == 7 {
					dealloc = "SELECT 1; DEALLOCATE add"
				}
				if err := exec(conn, dealloc); err != nil {
					return fmt.Errorf("%s: %w", dealloc, err)
				}
				if err := exec(conn, "DEALLOCATE add"); code(err) != "26000" {
					return fmt.Errorf("DEALLOCATE of a missing statement: want 26000, got %v", err)
				}
				if _, err := one(conn, "EXECUTE add(1)"); code(err) != "26000" {
					return fmt.Errorf("EXECUTE after DEALLOCATE: want 26000, got %v", err)
				}
				if err := exec(conn, prep[0]); err != nil {
					return err
				}
			}
		}
		return exec(conn, "DEALLOCATE ALL")
	}
	var wg sync.WaitGroup
	errs := make([]error, clients)
	for i, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = client(i, conn)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "client %d", i)
	}
	// After DEALLOCATE ALL every name is free again.
	_, err := one(conns[0], "EXECUTE mine")
	require.Equal(t, "26000", code(err))
	require.NoError(t, exec(conns[0], "PREPARE mine AS SELECT 'again'"))
	v, err := one(conns[0], "EXECUTE mine")
	require.NoError(t, err)
	require.Equal(t, "again", v)

	adm := m.connect(t, "pgbouncer", pgx.QueryExecModeSimpleProtocol)
	n := 0
	for _, r := range showText(t, adm, "SHOW CLIENTS") {
		if r["database"] == db {
			n++
			require.Empty(t, r["pin_reason"], "client pinned: %v", r)
		}
	}
	require.Equal(t, clients, n)
	servers := 0
	for _, r := range showText(t, adm, "SHOW SERVERS") {
		if r["database"] == db {
			servers++
		}
	}
	require.LessOrEqual(t, servers, 5)
}

// showText runs an admin console SHOW and returns its rows as text by column name.
func showText(t *testing.T, adm *pgx.Conn, cmd string) []map[string]string {
	t.Helper()
	rows, err := adm.Query(ctx(t), cmd)
	require.NoError(t, err)
	defer rows.Close()
	var out []map[string]string
	for rows.Next() {
		row := map[string]string{}
		for i, fd := range rows.FieldDescriptions() {
			row[fd.Name] = string(rows.RawValues()[i])
		}
		out = append(out, row)
	}
	require.NoError(t, rows.Err())
	return out
}
