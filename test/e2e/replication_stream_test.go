package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// A physical WAL stream through pgmux, driven byte by byte: what it moves shows in
// SHOW STATS, and SUSPEND holds it at a message boundary until RESUME.

// walStream is a physical replication connection through pgmux in CopyBoth mode, on its
// raw socket, counting the bytes it wrote and read.
type walStream struct {
	t           *testing.T
	nc          net.Conn
	wrote, read int
}

// startWALStream opens a physical replication connection to postgres through m and
// starts streaming from the server's current WAL position.
func startWALStream(t *testing.T, pg *pgtest.Server, m *mux) *walStream {
	t.Helper()
	rc, err := replConn(t, m, pgtest.SuperUser, replPass, "postgres", "true")
	require.NoError(t, err)
	hj, err := rc.Hijack()
	require.NoError(t, err)
	t.Cleanup(func() { _ = hj.Conn.Close() })
	var lsn string
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	direct := pg.Connect(t, pgtest.SuperUser, "", "postgres")
	defer direct.Close(ctx)
	require.NoError(t, direct.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn))
	w := &walStream{t: t, nc: hj.Conn}
	w.send('Q', append([]byte("START_REPLICATION PHYSICAL "+lsn), 0))
	return w
}

// send writes one message.
func (w *walStream) send(typ byte, body []byte) {
	w.t.Helper()
	m := append([]byte{typ, 0, 0, 0, 0}, body...)
	binary.BigEndian.PutUint32(m[1:], uint32(len(body)+4))
	require.NoError(w.t, w.nc.SetWriteDeadline(time.Now().Add(opTimeout)))
	_, err := w.nc.Write(m)
	require.NoError(w.t, err)
	w.wrote += len(m)
}

// statusUpdate sends a standby status update (CopyData 'r', 39 bytes on the wire).
func (w *walStream) statusUpdate() {
	w.send('d', append([]byte{'r'}, make([]byte, 33)...))
}

// readFor reads what arrives until at least n bytes came or d passed, and returns how
// many came.
func (w *walStream) readFor(n int, d time.Duration) int {
	w.t.Helper()
	deadline := time.Now().Add(d)
	buf := make([]byte, 64<<10)
	got := 0
	for got < n {
		require.NoError(w.t, w.nc.SetReadDeadline(deadline))
		k, err := w.nc.Read(buf)
		got += k
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		require.NoError(w.t, err)
	}
	w.read += got
	return got
}

// drain reads until nothing came for half a second.
func (w *walStream) drain() {
	for i := 0; i < 100 && w.readFor(1<<30, 500*time.Millisecond) > 0; i++ {
	}
}

// makeWAL writes about a megabyte of WAL on the server, directly.
func makeWAL(t *testing.T, pg *pgtest.Server, table string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	direct := pg.Connect(t, pgtest.SuperUser, "", "postgres")
	defer direct.Close(ctx)
	_, err := direct.Exec(ctx, "CREATE TABLE "+table+" AS SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 5000) g")
	require.NoError(t, err)
}

// dbStats are a database's SHOW STATS counters.
type dbStats struct{ received, sent, queries, xacts int64 }

func statsOf(t *testing.T, admin *pgx.Conn, db string) dbStats {
	t.Helper()
	var st dbStats
	for _, r := range withColumn(showRows(t, admin, "STATS"), "database", db) {
		for col, p := range map[string]*int64{"total_received": &st.received, "total_sent": &st.sent,
			"total_query_count": &st.queries, "total_xact_count": &st.xacts} {
			v, err := strconv.ParseInt(r[col], 10, 64)
			require.NoError(t, err, col)
			*p = v
		}
	}
	return st
}

// TestReplicationCountedInStats: the bytes a replication connection moves count in SHOW
// STATS' total_received and total_sent of its database while it streams (not only when it
// ends), as PgBouncer counts them, and stay counted once it ended; a stream is not a
// query nor a transaction.
func TestReplicationCountedInStats(t *testing.T) {
	pg, m := startReplication(t)
	admin := m.Console(t, pgtest.SuperUser, replPass)
	before := statsOf(t, admin, "postgres")

	w := startWALStream(t, pg, m)
	makeWAL(t, pg, "stats_wal")
	require.GreaterOrEqual(t, w.readFor(200_000, 20*time.Second), 200_000, "the WAL streams through pgmux")
	for range 3 {
		w.statusUpdate()
	}
	time.Sleep(200 * time.Millisecond) // the status updates reach pgmux
	mid := statsOf(t, admin, "postgres")
	require.GreaterOrEqual(t, mid.received-before.received, int64(w.wrote), "bytes from the replication client, while it streams")
	require.GreaterOrEqual(t, mid.sent-before.sent, int64(w.read), "bytes to the replication client, while it streams")
	require.Equal(t, before.queries, mid.queries, "a stream is not a query")
	require.Equal(t, before.xacts, mid.xacts, "a stream is not a transaction")

	require.NoError(t, w.nc.Close())
	awaitNone(t, "the replication server closes with its client", func() int { return walsenders(t, pg) })
	after := statsOf(t, admin, "postgres")
	require.GreaterOrEqual(t, after.received, mid.received, "the totals do not go down when the client leaves")
	require.GreaterOrEqual(t, after.sent, mid.sent, "the totals do not go down when the client leaves")
}

// TestReplicationSuspend: SUSPEND with a WAL stream open completes (the stream's server is
// never released, so waiting for it would never end) and holds the stream at a message
// boundary: nothing reaches the client while suspended; RESUME lets it go on. PgBouncer's
// SUSPEND likewise flushes the stream's buffers and stops reading its sockets.
func TestReplicationSuspend(t *testing.T) {
	pg, admin, w, ctx := suspendedStream(t)
	require.Zero(t, w.readFor(1, 1500*time.Millisecond), "nothing is relayed while suspended")
	require.Equal(t, 1, walsenders(t, pg), "the stream is held, not ended")

	_, err := admin.Exec(ctx, "RESUME")
	require.NoError(t, err)
	require.GreaterOrEqual(t, w.readFor(100_000, 20*time.Second), 100_000, "the stream goes on after RESUME")
}

// TestReplicationLeavesWhileSuspended: a replication client that leaves while the pooler
// is SUSPENDed has its server closed at once, as any client that leaves, not at RESUME.
// Here the client's last message (a status update) and the server's WAL are both held
// when it leaves. pgmux kept the relay, and so the walsender, until RESUME: the session
// waited for RESUME with the held message and did not look at its client's socket.
func TestReplicationLeavesWhileSuspended(t *testing.T) {
	pg, admin, w, ctx := suspendedStream(t)
	time.Sleep(300 * time.Millisecond) // the status update is read and held
	require.Equal(t, 1, walsenders(t, pg), "the stream is held, not ended, while its client stays")

	require.NoError(t, w.nc.Close())
	awaitNone(t, "the replication server closes with its client while suspended", func() int { return walsenders(t, pg) })
	require.Empty(t, withColumn(showRows(t, admin, "SERVERS"), "replication", "physical"), "SHOW SERVERS")

	_, err := admin.Exec(ctx, "RESUME")
	require.NoError(t, err)
}

// suspendedStream opens a WAL stream through pgmux, SUSPENDs the pooler (which must
// complete with the stream open), then makes WAL and sends a status update, so that
// both ways have a message held. ctx bounds the console commands that follow.
func suspendedStream(t *testing.T) (*pgtest.Server, *pgx.Conn, *walStream, context.Context) {
	t.Helper()
	pg, m := startReplication(t)
	admin := m.Console(t, pgtest.SuperUser, replPass)
	w := startWALStream(t, pg, m)
	makeWAL(t, pg, "before_suspend")
	require.Positive(t, w.readFor(100_000, 20*time.Second), "the WAL streams through pgmux")
	w.drain()

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	_, err := admin.Exec(ctx, "SUSPEND")
	require.NoError(t, err, "SUSPEND completes with a replication stream open")
	makeWAL(t, pg, "while_suspended")
	w.statusUpdate() // the other way is held too
	return pg, admin, w, ctx
}
