package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestNoStateLeaks shares one server connection (pool size 1, transaction mode) between
// clients and checks that what one does never shows through to another.
func TestNoStateLeaks(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t, "leaks")
	m := startMux(t, pg, bouncer{PoolMode: "transaction", PoolSize: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("tracked-parameters", func(t *testing.T) {
		a := m.Connect(t, pgtest.AppUser, pgtest.AppPassword, db)
		b := connect(t, m.URL(pgtest.AppUser, pgtest.AppPassword, db)+"&application_name=bee&timezone=UTC")
		_, err := a.Exec(ctx, "SET application_name = 'leaky'")
		require.NoError(t, err)
		_, err = a.Exec(ctx, "SET TimeZone = 'Asia/Tokyo'")
		require.NoError(t, err)
		for i := range 20 {
			var app, tz string
			require.NoError(t, b.QueryRow(ctx, "SELECT current_setting('application_name'), current_setting('TimeZone')").Scan(&app, &tz))
			require.Equal(t, "bee", app, "iteration %d", i)
			require.Equal(t, "UTC", tz, "iteration %d", i)
			require.NoError(t, a.QueryRow(ctx, "SELECT current_setting('application_name'), current_setting('TimeZone')").Scan(&app, &tz))
			require.Equal(t, "leaky", app, "iteration %d", i)
			require.Equal(t, "Asia/Tokyo", tz, "iteration %d", i)
			// What the server reported to each client follows its own SETs.
			require.Equal(t, "bee", b.PgConn().ParameterStatus("application_name"))
			require.Equal(t, "leaky", a.PgConn().ParameterStatus("application_name"))
			require.Equal(t, "Asia/Tokyo", a.PgConn().ParameterStatus("TimeZone"))
			require.Equal(t, "UTC", b.PgConn().ParameterStatus("TimeZone"))
		}
	})

	t.Run("client-gone-mid-transaction", func(t *testing.T) {
		setup := m.Connect(t, pgtest.AppUser, pgtest.AppPassword, db)
		_, err := setup.Exec(ctx, "CREATE TABLE gone (v text)")
		require.NoError(t, err)
		_, err = setup.Exec(ctx, "INSERT INTO gone VALUES ('committed')")
		require.NoError(t, err)

		a := m.Connect(t, pgtest.AppUser, pgtest.AppPassword, db)
		tx, err := a.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "INSERT INTO gone VALUES ('uncommitted')")
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "SET LOCAL application_name = 'mid-transaction'")
		require.NoError(t, err)
		// The client vanishes without Terminate while holding the only server.
		require.NoError(t, a.PgConn().Conn().Close())

		b := m.Connect(t, pgtest.AppUser, pgtest.AppPassword, db)
		for i := range 5 {
			var n int
			require.NoError(t, b.QueryRow(ctx, "SELECT count(*) FROM gone").Scan(&n), "iteration %d", i)
			require.Equal(t, 1, n, "the vanished client's row must be rolled back")
			require.Equal(t, byte('I'), b.PgConn().TxStatus())
			var app string
			require.NoError(t, b.QueryRow(ctx, "SELECT current_setting('application_name')").Scan(&app))
			require.NotEqual(t, "mid-transaction", app)
			// On a server still inside the old transaction, BEGIN ISOLATION LEVEL would
			// not take effect (it only warns); on a clean one it does.
			tx, err := b.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
			require.NoError(t, err)
			var iso string
			require.NoError(t, tx.QueryRow(ctx, "SHOW transaction_isolation").Scan(&iso))
			require.Equal(t, "serializable", iso)
			require.NoError(t, tx.Rollback(ctx))
		}
	})

	t.Run("startup-options-per-client", func(t *testing.T) {
		// options=-c search_path=... is not reported by the server: pgmux applies it with
		// set_config on every server the client is linked to, and only for that client.
		opts := "&options=" + urlQueryEscape("-c search_path=foo,public")
		a := connect(t, m.URL(pgtest.AppUser, pgtest.AppPassword, db)+opts)
		b := m.Connect(t, pgtest.AppUser, pgtest.AppPassword, db)
		// PostgreSQL itself says what the option gives.
		direct := connect(t, pg.URL(pgtest.AppUser, pgtest.AppPassword, db)+opts)
		var want string
		require.NoError(t, direct.QueryRow(ctx, "SHOW search_path").Scan(&want))
		require.Contains(t, want, "foo")
		var def string
		require.NoError(t, b.QueryRow(ctx, "SHOW search_path").Scan(&def))
		require.NotContains(t, def, "foo")
		for i := range 10 {
			var got string
			require.NoError(t, a.QueryRow(ctx, "SHOW search_path").Scan(&got))
			require.Equal(t, want, got, "iteration %d", i)
			require.NoError(t, b.QueryRow(ctx, "SHOW search_path").Scan(&got))
			require.Equal(t, def, got, fmt.Sprintf("iteration %d: another client's startup option leaked", i))
		}
	})
}
