//go:build linux

package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// TestParkedClientsResumeExactly parks clients in every shape an idle client comes in
// and checks that each one resumes as it was: a client that made nothing of its own
// (logged in only; or ran queries and set a session setting) parks without its working
// state (proxy/work.go), as does one with a protocol-level prepared statement, which it
// keeps aside (keptWork), while one with a LISTEN keeps it. SHOW MEM counts them; SHOW STATS_TOTALS neither loses nor double-counts the
// queries of the clients that gave their counters back; the statement, the setting, the
// notification, the cancel key and KILL_CLIENT all still work afterwards.
func TestParkedClientsResumeExactly(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := h.admin(t)
	fresh := h.connect(t, "app", "app", true)    // logs in, sends nothing
	counted := h.connect(t, "app", "app", true)  // queries, then a setting: owns nothing pgmux must keep
	prepared := h.connect(t, "app", "app", true) // a named statement of its own
	listener := h.connect(t, "app", "app", true) // LISTEN
	doomed := h.connect(t, "app", "app", true)   // KILL_CLIENT after it parked

	for i := 0; i < 5; i++ {
		execSQL(t, counted, "SELECT 1")
	}
	execSQL(t, counted, "SET statement_timeout = '7s'")
	_, err := prepared.PgConn().Prepare(ctx, "ps1", "SELECT $1::int + 1", nil)
	require.NoError(t, err)
	execSQL(t, listener, "LISTEN parked_chan")
	doomedID := clientID(t, adm, doomed)

	queries := func() int64 {
		_, rows := show(t, adm, "SHOW STATS_TOTALS")
		return num(t, rowWhere(rows, "database", "app"), "query_count")
	}
	working := func() (clients, work int64) {
		_, rows := show(t, adm, "SHOW MEM")
		return num(t, rowWhere(rows, "name", "client"), "used"), num(t, rowWhere(rows, "name", "client_work"), "used")
	}
	before := queries()
	require.GreaterOrEqual(t, before, int64(6))

	// Parked after a second of silence (the idle sweep): the admin and listener clients
	// hold working state, the other four none (the prepared one keeps its statement).
	require.Eventually(t, func() bool {
		c, w := working()
		return c == 6 && w == 2
	}, 20*time.Second, 100*time.Millisecond, "four parked clients give back their working state")
	require.Equal(t, before, queries(), "the parked clients' counters went to the pool's totals")

	// KILL_CLIENT reaches a parked client that has no working state.
	_, err = adm.Exec(ctx, fmt.Sprintf("KILL_CLIENT %d", doomedID))
	require.NoError(t, err)
	var n int
	require.Error(t, doomed.QueryRow(ctx, "SELECT 1").Scan(&n), "a killed parked client is gone")

	// Each resumes as it was.
	require.NoError(t, fresh.QueryRow(ctx, "SELECT 41 + 1").Scan(&n))
	require.Equal(t, 42, n)
	var timeout string
	require.NoError(t, counted.QueryRow(ctx, "SHOW statement_timeout").Scan(&timeout))
	require.Equal(t, "7s", timeout, "a setting survives the park")
	res := prepared.PgConn().ExecPrepared(ctx, "ps1", [][]byte{[]byte("1")}, nil, nil).Read()
	require.NoError(t, res.Err)
	require.Equal(t, "2", string(res.Rows[0][0]), "the named statement survives the park")
	execSQL(t, fresh, "NOTIFY parked_chan, 'hello'")
	note, err := listener.WaitForNotification(ctx)
	require.NoError(t, err)
	require.Equal(t, "hello", note.Payload)
	require.Equal(t, before+4, queries(), "each resumed client's query counted once") // SELECT, SHOW, EXECUTE, NOTIFY

	// The cancel key of a client that parked again without its working state still
	// reaches its query: sent once the query runs on the server (a cancel sent before
	// that cancels nothing), it ends the query long before its statement_timeout (7 s,
	// set above) would, which ends it with the same SQLSTATE but another message.
	require.Eventually(t, func() bool { c, w := working(); return c == 5 && w == 2 }, 20*time.Second, 100*time.Millisecond)
	const sleeper = "SELECT pg_sleep(20), 'parked cancel'"
	direct := h.pg.Connect(t, pgtest.SuperUser, "", pgtest.AppDB)
	cancelled := make(chan error, 1)
	go func() {
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			var running bool
			if err := direct.QueryRow(ctx, "SELECT count(*) > 0 FROM pg_stat_activity WHERE query = $1 AND state = 'active'",
				sleeper).Scan(&running); err != nil {
				cancelled <- err
				return
			}
			if running {
				cancelled <- counted.PgConn().CancelRequest(ctx)
				return
			}
		}
		cancelled <- errors.New("the query never ran on the server")
	}()
	_, err = counted.Exec(ctx, sleeper)
	require.NoError(t, <-cancelled)
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "57014", pe.Code, pe.Message)
	require.Contains(t, pe.Message, "user request", "the cancel, not statement_timeout, ended the query")
	require.NoError(t, counted.QueryRow(ctx, "SELECT 7").Scan(&n))
	require.Equal(t, 7, n)
}

// clientID finds conn's id in SHOW CLIENTS by an application_name set for the lookup.
func clientID(t *testing.T, adm, conn *pgx.Conn) int64 {
	t.Helper()
	name := fmt.Sprintf("find-%p", conn)
	execSQL(t, conn, "SET application_name = '"+name+"'")
	_, rows := show(t, adm, "SHOW CLIENTS")
	r := rowWhere(rows, "application_name", name)
	require.NotNil(t, r, "no client named %s", name)
	return num(t, r, "id")
}

// TestFewClientsKeepTheirGoroutinesLonger: below parkManyClients connected clients, a
// client idle for a few seconds between requests is not parked (parking and resuming cost
// its next request a new goroutine and a rebuilt net.Conn); it parks after
// parkAfterFew. With parkManyClients or more, parkAfter applies (the 2,000-client tests in
// test/e2e, and TestParkDelay).
func TestFewClientsKeepTheirGoroutinesLonger(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	adm := h.admin(t)
	a := h.connect(t, "app", "app", true)
	b := h.connect(t, "app", "app", true)
	execSQL(t, a, "SELECT 1")
	execSQL(t, b, "SELECT 1")
	work := func() int64 {
		_, rows := show(t, adm, "SHOW MEM")
		return num(t, rowWhere(rows, "name", "client_work"), "used")
	}
	require.Equal(t, int64(3), work(), "two clients and the console hold working state")
	time.Sleep(3500 * time.Millisecond) // three sweeps past parkAfter
	require.Equal(t, int64(3), work(), "idle for 3.5 s with 3 clients connected: nothing parked")
	// parkAfterFew (10 s) from the last query: both clients park and give back their state.
	require.Eventually(t, func() bool { return work() == 1 }, 15*time.Second, 200*time.Millisecond,
		"parked (and its working state given back) after parkAfterFew")
	execSQL(t, a, "SELECT 2") // and resumes
}

// TestRequestTimeIsTheLastRequest: SHOW CLIENTS' request_time is when the client's latest
// request began, as PgBouncer's, between requests and once the client has parked and
// given back its working state. Before, it showed the connect time in both cases (the
// request's start was forgotten at its ReadyForQuery, and with the working state).
func TestRequestTimeIsTheLastRequest(t *testing.T) {
	h := startProxy(t, harnessOpts{})
	adm := h.admin(t)
	c := h.connect(t, "app", "app", true)
	id := clientID(t, adm, c)
	times := func() (connect, request time.Time) {
		t.Helper()
		_, rows := show(t, adm, "SHOW CLIENTS")
		r := rowWhere(rows, "id", id)
		require.NotNil(t, r, "client %d not in SHOW CLIENTS", id)
		var err error
		connect, err = time.Parse("2006-01-02 15:04:05 MST", r["connect_time"].(string))
		require.NoError(t, err)
		request, err = time.Parse("2006-01-02 15:04:05 MST", r["request_time"].(string))
		require.NoError(t, err)
		return connect, request
	}
	time.Sleep(1100 * time.Millisecond) // request_time is shown to the second
	sent := time.Now()
	execSQL(t, c, "SELECT 1")

	check := func(when string) {
		t.Helper()
		connect, request := times()
		require.True(t, request.After(connect), "%s: request_time %v is not after connect_time %v", when, request, connect)
		require.WithinDuration(t, sent, request, time.Second, "%s: request_time", when)
	}
	check("between requests")
	// parkAfterFew (10 s) from the query: the client parks and gives back its working state.
	work := func() int64 {
		_, rows := show(t, adm, "SHOW MEM")
		return num(t, rowWhere(rows, "name", "client_work"), "used")
	}
	require.Eventually(t, func() bool { return work() == 1 }, 20*time.Second, 200*time.Millisecond,
		"parked, its working state given back (the console keeps its own)")
	check("parked")
	execSQL(t, c, "SELECT 2") // and resumes
}
