package prepared

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
)

// TestSearchPathTenantsShareNoStatement: schema-per-tenant clients (each with its own
// search_path, one from its startup parameters, one SET after connecting) prepare the
// same text, which names tables of different shapes, and take turns on one server. Each
// gets its own table's rows every time, as on direct connections. pgmux named the server
// statement by its text alone, so the two shared it: PostgreSQL re-parsed it at each
// switch of search_path, and each client's Bind failed with 0A000 "cached plan must not
// change result type" after the other's.
func TestSearchPathTenantsShareNoStatement(t *testing.T) {
	m := startMux(t, setup{poolSize: 1})
	db := database(t, m.pg, "tenants")
	for _, q := range []string{"CREATE SCHEMA sp1", "CREATE SCHEMA sp2",
		"CREATE TABLE sp1.t (x int)", "INSERT INTO sp1.t VALUES (1)",
		"CREATE TABLE sp2.t (a text, b text)", "INSERT INTO sp2.t VALUES ('two', '2')",
		"GRANT USAGE ON SCHEMA sp1, sp2 TO PUBLIC", "GRANT SELECT ON sp1.t, sp2.t TO PUBLIC"} {
		m.pg.ExecDB(t, db, q)
	}

	u := m.url(db)
	if strings.Contains(u, "?") {
		u += "&search_path=sp1"
	} else {
		u += "?search_path=sp1"
	}
	c1 := muxtest.Connect(t, u, pgx.QueryExecModeCacheStatement, opTimeout)
	c2 := m.connect(t, db, pgx.QueryExecModeCacheStatement)
	_, err := c2.Exec(ctx(t), "SET search_path = sp2")
	require.NoError(t, err)

	for round := range 4 {
		var x int
		require.NoError(t, c1.QueryRow(ctx(t), "SELECT * FROM t").Scan(&x), "round %d, tenant sp1", round)
		require.Equal(t, 1, x)
		var a, b string
		require.NoError(t, c2.QueryRow(ctx(t), "SELECT * FROM t").Scan(&a, &b), "round %d, tenant sp2", round)
		require.Equal(t, []string{"two", "2"}, []string{a, b})
	}
}
