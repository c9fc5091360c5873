package sticky

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestResetWhenRestoreFails: after RESET of a parameter the client set at startup, pgmux
// sets the startup value again with a hidden query, which can fail (here: the pg_settings
// view is closed to the client's role; in the field, a cancel meant for another client's
// query). The client must still see what a direct session shows: its startup value, on
// the same link (session mode) and on the next (transaction mode), with no
// ParameterStatus of the server's default.
func TestResetWhenRestoreFails(t *testing.T) {
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			m := startMux(t, setup{poolSize: 2, extra: map[string]string{"pool_mode": mode}})
			db := m.pg.NewDatabase(t, "restorefail")
			su := m.pg.Connect(t, pgtest.SuperUser, "", db)
			_, err := su.Exec(ctxT(t), "REVOKE SELECT ON pg_catalog.pg_settings FROM PUBLIC")
			require.NoError(t, err)
			params := map[string]string{"options": "-c DateStyle=Postgres,MDY"}
			viaMux := muxtest.Connect(t, withParams(t, m.url(db), params), pgx.QueryExecModeSimpleProtocol, opTimeout)
			direct := muxtest.Connect(t, withParams(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db), params),
				pgx.QueryExecModeSimpleProtocol, opTimeout)
			for _, c := range []*pgx.Conn{viaMux, direct} {
				_, err := c.Exec(ctxT(t), "RESET DateStyle")
				require.NoError(t, err)
			}
			for i := 0; i < 3; i++ {
				require.Equal(t, show(t, direct, "DateStyle"), show(t, viaMux, "DateStyle"))
			}
			require.Equal(t, "Postgres, MDY", show(t, viaMux, "DateStyle"))
			require.Equal(t, direct.PgConn().ParameterStatus("DateStyle"), viaMux.PgConn().ParameterStatus("DateStyle"))
			// A simple Query's reset is followed by the startup value inside the Query
			// (settings_inplace.go), which needs no pg_settings; a reset sent with the
			// extended protocol still takes the hidden query after the Sync, its retry
			// included.
			for _, c := range []*pgx.Conn{viaMux, direct} {
				_, err := c.Exec(ctxT(t), "SET DateStyle = ISO")
				require.NoError(t, err)
				_, err = c.PgConn().ExecParams(ctxT(t), "RESET DateStyle", nil, nil, nil, nil).Close()
				require.NoError(t, err)
			}
			for i := 0; i < 3; i++ {
				require.Equal(t, show(t, direct, "DateStyle"), show(t, viaMux, "DateStyle"))
			}
			require.Equal(t, "Postgres, MDY", show(t, viaMux, "DateStyle"))
			require.Equal(t, direct.PgConn().ParameterStatus("DateStyle"), viaMux.PgConn().ParameterStatus("DateStyle"))
		})
	}
}

// TestFailedStateCheckKeepsPin: after a statement that may release session state, pgmux
// asks the server whether any is left; when that check fails (here the pg_settings view
// is closed to the role), nothing is known and the client stays pinned: its advisory
// lock is still held on its server.
func TestFailedStateCheckKeepsPin(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	db := m.pg.NewDatabase(t, "checkfail")
	su := m.pg.Connect(t, pgtest.SuperUser, "", db)
	_, err := su.Exec(ctxT(t), "REVOKE SELECT ON pg_catalog.pg_settings FROM PUBLIC")
	require.NoError(t, err)
	adm := m.admin(t)
	c := muxtest.Connect(t, m.url(db), pgx.QueryExecModeSimpleProtocol, opTimeout)
	for _, sql := range []string{"SELECT pg_advisory_lock(7)", "RESET work_mem", "SELECT 1"} {
		_, err := c.Exec(ctxT(t), sql)
		require.NoError(t, err, sql)
	}
	// The check went out right behind RESET, so it was answered before SELECT 1.
	require.Equal(t, "advisory_lock", pinReasonOf(t, adm, db, c))
	var held bool
	require.NoError(t, c.QueryRow(ctxT(t), "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()").Scan(&held))
	require.True(t, held, "the client's server is the one holding its lock")
}
