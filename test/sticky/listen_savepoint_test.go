package sticky

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestUnlistenSavepoints: an UNLISTEN inside a transaction block with savepoints ends a
// shared subscription exactly when it does on PostgreSQL: ROLLBACK TO SAVEPOINT undoes
// only the UNLISTENs after that savepoint, RELEASE folds a savepoint's into the one
// around it, a later ROLLBACK TO of an outer savepoint undoes those too, and COMMIT makes
// the rest take effect. Each case runs on a direct connection to PostgreSQL first, which
// says whether the client still receives; pgmux must agree, and so must the expectation
// written here.
func TestUnlistenSavepoints(t *testing.T) {
	m := startMux(t, setup{poolSize: 3})
	db := m.pg.NewDatabase(t, "unlistensavepoint")
	ctx := ctxT(t)
	simple := func(sqls ...string) unlistenRun { return simpleRun(ctx, sqls...) }
	// mixed runs "x:" statements with the extended protocol, the rest as simple Queries.
	mixed := func(sqls ...string) unlistenRun {
		return func(c *pgx.Conn, ch string) error {
			for _, s := range sqls {
				s = strings.ReplaceAll(s, "CH", ch)
				var err error
				if x, ok := strings.CutPrefix(s, "x:"); ok {
					err = execExtended(ctx, c, x)
				} else {
					_, err = c.Exec(ctx, s)
				}
				if err != nil {
					return fmt.Errorf("%s: %w", s, err)
				}
			}
			return nil
		}
	}
	cases := []struct {
		name    string
		run     unlistenRun
		stopped bool // PostgreSQL no longer delivers
	}{
		{"UNLISTEN before a savepoint rolled back to", simple("BEGIN", "UNLISTEN CH", "SAVEPOINT a", "ROLLBACK TO SAVEPOINT a", "COMMIT"), true},
		{"UNLISTEN * before a savepoint rolled back to", simple("BEGIN", "UNLISTEN *", "SAVEPOINT a", "SELECT 1", "ROLLBACK TO a", "COMMIT"), true},
		{"UNLISTEN after a savepoint rolled back to", simple("BEGIN", "SAVEPOINT a", "UNLISTEN CH", "ROLLBACK TO a", "COMMIT"), false},
		{"one query", simple("BEGIN; UNLISTEN CH; SAVEPOINT a; ROLLBACK TO SAVEPOINT a; COMMIT"), true},
		{"one query after the savepoint", simple("BEGIN; SAVEPOINT a; UNLISTEN CH; ROLLBACK TO SAVEPOINT a; COMMIT"), false},
		{"released savepoint", simple("BEGIN", "SAVEPOINT a", "UNLISTEN CH", "RELEASE SAVEPOINT a", "COMMIT"), true},
		{"released inner, outer rolled back", simple("BEGIN", "SAVEPOINT a", "SAVEPOINT b", "UNLISTEN CH", "RELEASE b", "ROLLBACK TO a", "COMMIT"), false},
		{"inner rolled back, outer kept", simple("BEGIN", "SAVEPOINT a", "UNLISTEN CH", "SAVEPOINT b", "ROLLBACK TO b", "RELEASE a", "COMMIT"), true},
		{"error in a savepoint recovered", simple("BEGIN", "UNLISTEN CH", "SAVEPOINT a", "SELECT 1/0", "ROLLBACK TO a", "COMMIT"), true},
		{"same name again", simple("BEGIN", "SAVEPOINT a", "UNLISTEN CH", "SAVEPOINT a", "ROLLBACK TO a", "COMMIT"), true},
		{"same name released, older rolled back", simple("BEGIN", "SAVEPOINT a", "UNLISTEN CH", "SAVEPOINT a", "RELEASE a", "ROLLBACK TO a", "COMMIT"), false},
		{"rolled back to, then the whole transaction", simple("BEGIN", "UNLISTEN CH", "SAVEPOINT a", "ROLLBACK TO a", "ROLLBACK"), false},
		{"extended protocol", mixed("BEGIN", "x:UNLISTEN CH", "x:SAVEPOINT a", "x:ROLLBACK TO SAVEPOINT a", "COMMIT"), true},
		{"extended protocol after the savepoint", mixed("BEGIN", "x:SAVEPOINT a", "x:UNLISTEN CH", "x:ROLLBACK TO SAVEPOINT a", "COMMIT"), false},
	}
	notifier, control := m.connect(t, db), m.connect(t, db)
	direct := m.direct(t, db)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch := fmt.Sprintf("s%d", i)
			require.Equal(t, tc.stopped, stopsOnPostgres(t, ctx, m.direct(t, db), direct, ch, tc.run),
				"the case's expectation is not what PostgreSQL does")
			checkUnlisten(t, ctx, m.connect(t, db), control, notifier, ch, tc.run, tc.stopped)
		})
	}
}

// stopsOnPostgres runs a case on client, a direct connection to PostgreSQL, and reports
// whether it stopped receiving ch's notifications; notifier is another direct connection.
func stopsOnPostgres(t *testing.T, ctx context.Context, client, notifier *pgx.Conn, ch string, run unlistenRun) bool {
	t.Helper()
	_, err := client.Exec(ctx, "LISTEN "+ch)
	require.NoError(t, err)
	require.NoError(t, run(client, ch))
	_, err = notifier.Exec(ctx, "NOTIFY "+ch+", 'direct'")
	require.NoError(t, err)
	_, err = client.Exec(ctx, "SELECT 1") // a notification committed before it comes first
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = client.WaitForNotification(short)
	return err != nil
}
