package prepared

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestCopyQueryNamesFlushInCopyIn: PostgreSQL ignores a Flush or a Sync that a client
// sends in the middle of a COPY FROM STDIN's copy-in (copyfrom.c: "for the convenience
// of client libraries"). A Query with a PREPARE and a COPY leaves Closes waiting on the
// server (closeLeft), sent in front of the client's next message other than COPY data:
// a Flush or Sync in the copy-in must not count as one, or pgmux's Close reaches the
// server in its copy-in and fails the COPY (08P01 "unexpected message type 0x43 during
// COPY from stdin") where PostgreSQL loads the rows.
func TestCopyQueryNamesFlushInCopyIn(t *testing.T) {
	for _, mid := range []struct {
		name string
		msg  pgproto3.FrontendMessage
	}{{"Flush", flushMsg}, {"Sync", syncMsg}} {
		t.Run(mid.name, func(t *testing.T) {
			inModes(t, setup{poolSize: 1}, func(t *testing.T, m *mux) {
				db := database(t, m.pg, "copyflush", "CREATE TABLE t (v int)")
				run := func(r *raw) {
					copyTwoRows(t, r, "PREPARE cp AS SELECT count(*) FROM t; COPY t FROM STDIN", mid.msg)
					require.Equal(t, []string{"2"}, r.query("EXECUTE cp"))
					r.query("TRUNCATE t")
				}
				run(dialRaw(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db))) // PostgreSQL itself
				run(m.raw(t, db))
			})
		})
	}
}

// TestCopyQueryReleaseSyncInCopyIn: a pinned client's Query that may release its pin
// (DEALLOCATE of its statement) and runs COPY FROM STDIN defers the state check that
// decides the release to the client's next Query or Sync (forwardSticky): a Sync the
// client sends in the copy-in, which PostgreSQL ignores, must not be that one, or the
// check's Query reaches the server in its copy-in and fails the COPY (08P01, "unexpected
// message type 0x51" in unnamed mode).
func TestCopyQueryReleaseSyncInCopyIn(t *testing.T) {
	inModes(t, setup{poolSize: 1}, func(t *testing.T, m *mux) {
		db := database(t, m.pg, "copyrelease", "CREATE TABLE t (v int)")
		run := func(r *raw) {
			r.query("PREPARE x AS SELECT 1")
			copyTwoRows(t, r, "DEALLOCATE x; COPY t FROM STDIN", syncMsg)
			require.Equal(t, []string{"2"}, r.query("SELECT count(*) FROM t"))
			r.query("TRUNCATE t")
		}
		run(dialRaw(t, m.pg.URL(pgtest.AppUser, pgtest.AppPassword, db))) // PostgreSQL itself
		run(m.raw(t, db))
	})
}

// copyTwoRows sends sql, one statement then COPY t FROM STDIN, and in its copy-in mid,
// then two rows, and requires the COPY to load them.
func copyTwoRows(t *testing.T, r *raw, sql string, mid pgproto3.FrontendMessage) {
	t.Helper()
	r.send(query(sql))
	r.expect("C")
	_, ok := r.recv().(*pgproto3.CopyInResponse)
	require.True(t, ok, "want CopyInResponse")
	r.send(mid, &pgproto3.CopyData{Data: []byte("1\n2\n")}, &pgproto3.CopyDone{})
	got := r.expect("CZ")
	require.Equal(t, "COPY 2", string(got[0].(*pgproto3.CommandComplete).CommandTag))
}
