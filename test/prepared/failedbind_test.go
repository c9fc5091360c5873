package prepared

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestBindInFailedTransactionAsPostgres: a Bind of a statement the server lacks (evicted
// from its cache: max_prepared_statements = 1) inside a failed transaction is refused
// as PostgreSQL refuses it, byte for byte (25P02 from the Bind, not from pgmux's Parse in
// front of it); a ROLLBACK prepared as a statement still runs there.
func TestBindInFailedTransactionAsPostgres(t *testing.T) {
	m := startMux(t, setup{poolSize: 2, maxStmts: 1})
	s := func(want string, msgs ...pgproto3.FrontendMessage) step { return step{msgs, want} }
	steps := []step{
		s("111Z", parse("a", "SELECT $1::int"), parse("b", "SELECT 2"), parse("rb", "ROLLBACK"), syncMsg),
		s("CZ", query("BEGIN")),
		s("2DCZ", bind("", "b"), execute("", 0), syncMsg),
		s("EZ", query("SELECT 1/0")),
		s("EZ", bind("", "a", "1"), execute("", 0), syncMsg),
		s("EZ", bind("", "a"), execute("", 0), syncMsg),
		s("EZ", bind("", "a", "1", "2"), execute("", 0), syncMsg),
		s("EZ", bind("", "b"), execute("", 0), syncMsg),
		s("2CZ", bind("", "rb"), execute("", 0), syncMsg),
		s("2DCZ", bind("", "a", "3"), execute("", 0), syncMsg),
	}
	db := database(t, m.pg, "failedbind")
	sameAsDirect(t, m, db, steps)
}
