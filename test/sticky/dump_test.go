package sticky

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/muxtest"
)

// TestDumpRestore: pg_dump of a database with tables, rows, an index and a sequence
// through pgmux, and pg_restore of it into a fresh database through pgmux. In transaction
// mode the settings pg_dump and pg_restore make follow them from server to server; with
// PGOPTIONS="-c pgmux.pool_mode=session" they ask for a session outright.
func TestDumpRestore(t *testing.T) {
	m := startMux(t, setup{poolSize: 2})
	pgDump := m.pg.RequireBin(t, "pg_dump")
	pgRestore := m.pg.RequireBin(t, "pg_restore")
	src := m.pg.NewDatabase(t, "dumpsrc")
	direct := m.direct(t, src)
	_, err := direct.Exec(ctxT(t), `
		CREATE SEQUENCE ticket_seq START 1000;
		CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text);
		CREATE TABLE orders (id bigserial PRIMARY KEY, customer int REFERENCES customers, total numeric(10,2),
			ticket bigint DEFAULT nextval('ticket_seq'));
		CREATE INDEX orders_customer_idx ON orders (customer);
		INSERT INTO customers (name, email) SELECT 'c' || g, 'c' || g || '@example.com' FROM generate_series(1, 500) g;
		INSERT INTO orders (customer, total) SELECT 1 + g % 500, g * 1.5 FROM generate_series(1, 3000) g;
		GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC;
		GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO PUBLIC;
		ALTER TABLE customers OWNER TO app; ALTER TABLE orders OWNER TO app; ALTER SEQUENCE ticket_seq OWNER TO app`)
	require.NoError(t, err)

	for _, c := range []struct {
		name    string
		options string // PGOPTIONS
	}{
		{"transaction", ""},
		{"session", "-c pgmux.pool_mode=session"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst := m.pg.NewDatabase(t, "dumpdst_"+c.name)
			file := filepath.Join(t.TempDir(), "dump.custom")
			var extra []string
			if c.options != "" {
				extra = append(extra, "PGOPTIONS="+c.options)
			}
			out, err := muxtest.RunCmd(t, 2*time.Minute, m.env(src, extra...), pgDump, "-Fc", "--no-owner", "-f", file)
			require.NoError(t, err, "pg_dump:\n%s", out)
			out, err = muxtest.RunCmd(t, 2*time.Minute, m.env(dst, extra...), pgRestore, "--no-owner", "--exit-on-error",
				"-d", dst, file)
			require.NoError(t, err, "pg_restore:\n%s", out)
			// A parallel restore opens several sessions at once, all through pgmux.
			dst2 := m.pg.NewDatabase(t, "dumpdst_j_"+c.name)
			out, err = muxtest.RunCmd(t, 2*time.Minute, m.env(dst2, extra...), pgRestore, "--no-owner", "--exit-on-error",
				"-j", "3", "-d", dst2, file)
			require.NoError(t, err, "pg_restore -j 3:\n%s", out)

			for _, db := range []string{dst, dst2} {
				check := m.direct(t, db)
				for _, q := range []struct {
					sql  string
					want int64
				}{
					{"SELECT count(*) FROM customers", 500},
					{"SELECT count(*) FROM orders", 3000},
					{"SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_customer_idx'", 1},
					{"SELECT last_value FROM ticket_seq", 1000 + 3000 - 1},
					{"SELECT last_value FROM customers_id_seq", 500},
				} {
					var got int64
					require.NoError(t, check.QueryRow(ctxT(t), q.sql).Scan(&got), q.sql)
					require.Equal(t, q.want, got, "%s in %s", q.sql, db)
				}
			}
			// Nothing stays pinned after the tools leave, and the pool has its servers back.
			adm := m.admin(t)
			_, rows := showClients(t, adm)
			for _, r := range rows {
				require.NotEqual(t, src, r["database"], "client of %s still connected: %v", src, r)
			}
		})
	}
}
