package sticky

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestSessionCharacteristicsFollowTheClient: SET SESSION CHARACTERISTICS AS TRANSACTION
// sets the session's transaction defaults. They follow the client to whichever server it
// gets, like a SET of default_transaction_isolation would, and do not stay on the server
// for the next client. pgmux let the statement through as one touching nothing: the next
// client of that server began its transactions SERIALIZABLE (or DEFERRABLE), and the
// client itself lost its default on the next server it got.
func TestSessionCharacteristicsFollowTheClient(t *testing.T) {
	m := startMux(t, setup{poolSize: 1})
	db := m.pg.NewDatabase(t, "characteristics")
	adm := m.admin(t)
	c1 := m.connect(t, db)
	c2 := m.connect(t, db)

	_, err := c1.Exec(ctxT(t), "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, DEFERRABLE")
	require.NoError(t, err)
	inTx := func(c *pgx.Conn, name string) string {
		var v string
		require.NoError(t, pgx.BeginFunc(ctxT(t), c, func(tx pgx.Tx) error {
			return tx.QueryRow(ctxT(t), "SELECT current_setting($1)", name).Scan(&v)
		}))
		return v
	}
	for round := range 3 {
		require.Equal(t, "read committed", inTx(c2, "transaction_isolation"), "round %d: another client's characteristics", round)
		require.Equal(t, "off", inTx(c2, "transaction_deferrable"), "round %d", round)
		require.Equal(t, "serializable", inTx(c1, "transaction_isolation"), "round %d: the client's own characteristics", round)
		require.Equal(t, "on", inTx(c1, "transaction_deferrable"), "round %d", round)
	}
	noPins(t, m, adm, db)
}
