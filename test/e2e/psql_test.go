package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestPsql drives psql through pgmux in transaction mode: \d (catalog queries), a \copy
// round trip compared byte for byte, and a long query cancelled with Ctrl-C.
func TestPsql(t *testing.T) {
	pg := pgtest.Start(t)
	psql := pg.RequireBin(t, "psql")
	db := pg.NewDatabase(t, "psql")
	m := startMux(t, pg, bouncer{PoolMode: "transaction", PoolSize: 2})
	env := m.Env(pgtest.AppUser, pgtest.AppPassword, db)
	run := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := muxtest.RunCmd(t, time.Minute, env, psql, append([]string{"-X", "-v", "ON_ERROR_STOP=1"}, args...)...)
		require.NoError(t, err, out)
		return out
	}
	run(t, "-c", "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, note text, price numeric(10,2))")

	t.Run("describe", func(t *testing.T) {
		out := run(t, "-c", `\d items`)
		for _, want := range []string{`Table "public.items"`, "id", "integer", "name", "text", "not null", "price", "numeric(10,2)", `"items_pkey" PRIMARY KEY, btree (id)`} {
			require.Contains(t, out, want)
		}
	})

	t.Run("copy-round-trip", func(t *testing.T) {
		dir := t.TempDir()
		in, out := filepath.Join(dir, "in.tsv"), filepath.Join(dir, "out.tsv")
		var b bytes.Buffer
		for i := 1; i <= 5000; i++ {
			note := `\N`
			if i%3 != 0 {
				note = fmt.Sprintf(`line\twith tab\\backslash and "quotes" é ✓ %d`, i)
			}
			fmt.Fprintf(&b, "%d\tname %d\t%s\t%d.%02d\n", i, i, note, i, i%100)
		}
		require.NoError(t, os.WriteFile(in, b.Bytes(), 0o644))
		got := run(t, "-c", `\copy items from '`+in+`'`)
		require.Contains(t, got, "COPY 5000")
		got = run(t, "-c", `\copy (SELECT * FROM items ORDER BY id) to '`+out+`'`)
		require.Contains(t, got, "COPY 5000")
		back, err := os.ReadFile(out)
		require.NoError(t, err)
		require.True(t, bytes.Equal(b.Bytes(), back), "the file copied out differs from the one copied in (%d vs %d bytes)", len(back), b.Len())
	})

	t.Run("cancel-with-ctrl-c", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p, err := startProc(t, "", nil, env, psql, "-X", "-c", "SELECT pg_sleep(30)")
		require.NoError(t, err)
		admin := pg.Connect(t, pgtest.SuperUser, "", db)
		// Wait until the query runs on the server, then press Ctrl-C: psql sends a
		// CancelRequest to pgmux, which must forward it to the right backend.
		require.Eventually(t, func() bool {
			var n int
			err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query = 'SELECT pg_sleep(30)' AND state = 'active'", db).Scan(&n)
			return err == nil && n == 1
		}, 10*time.Second, 20*time.Millisecond)
		start := time.Now()
		err = p.stop(t, syscall.SIGINT, 10*time.Second)
		require.Error(t, err, "psql must fail: its query was cancelled")
		require.Less(t, time.Since(start), 10*time.Second)
		require.Contains(t, p.out.String(), "canceling statement due to user request")
		// The pool is still usable afterwards.
		run(t, "-c", "SELECT 1")
	})
}

// TestCancelRequest cancels a long query from pgx (context cancellation sends a
// CancelRequest through pgmux) and checks the client gets 57014 and can go on.
func TestCancelRequest(t *testing.T) {
	pg := pgtest.Start(t)
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			m := startMux(t, pg, bouncer{PoolMode: mode, PoolSize: 2})
			// pgx's default on a cancelled context is to cut the connection; this handler
			// sends a CancelRequest instead and only cuts after 5s.
			cfg, err := pgx.ParseConfig(m.URL(pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB))
			require.NoError(t, err)
			cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
				return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 5 * time.Second}
			}
			conn, err := pgx.ConnectConfig(context.Background(), cfg)
			require.NoError(t, err)
			defer conn.Close(context.Background())
			other := m.Connect(t, pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start := time.Now()
			_, err = conn.Exec(ctx, "SELECT pg_sleep(30)")
			pe := muxtest.PgError(t, err)
			require.Equal(t, "57014", pe.Code, pe.Error())
			require.Less(t, time.Since(start), 5*time.Second)

			ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel2()
			var n int
			require.NoError(t, conn.QueryRow(ctx2, "SELECT 42").Scan(&n))
			require.Equal(t, 42, n)
			// A cancel aimed at one client never hits another's query.
			require.NoError(t, other.QueryRow(ctx2, "SELECT 7 FROM pg_sleep(0.2)").Scan(&n))
			require.Equal(t, 7, n)
		})
	}
}
