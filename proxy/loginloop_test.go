//go:build linux

package proxy_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/protocol/auth"
	"github.com/pgmux/pgmux/proxy"
	"github.com/pgmux/pgmux/proxy/evloop"
)

// With client_loop on, logins run on the client loops (loginloop_linux.go). What a login
// waits for besides its client's socket runs on a goroutine: a login held by PAUSE leaves
// the other logins of every loop alone, and so does a pool's first server login. Logins
// that derive keys (a cleartext password in auth_file under SCRAM, a cleartext password
// checked against a SCRAM verifier) and wrong passwords behave as on a goroutine. With
// PGMUX_CLIENT_LOOP=0 the same logins run on goroutines, and none starts on a loop.
func TestLoginsOnLoop(t *testing.T) {
	loops := os.Getenv("PGMUX_CLIENT_LOOP") != "0"
	pg := pgtest.Start(t)
	h := startProxy(t, harnessOpts{
		extra: map[string]string{"auth_type": "scram-sha-256"},
		dbs:   map[string]string{"other": fmt.Sprintf("host=%s port=%d dbname=%s", pg.Host, pg.Port, pgtest.AppDB)},
	})
	creds := map[string]config.Credential{
		pgtest.AppUser: {User: pgtest.AppUser, Password: "plain-secret"},
		"admin":        {User: "admin", Password: "admin-secret"},
	}
	require.NoError(t, h.srv.Reload(h.srv.Config().Clone(), creds))
	before := proxy.LoopLogins(h.srv)

	connect := func(user, pw, db string) (*pgx.Conn, error) {
		url := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", user, pw, h.port, db)
		cc, err := pgx.ParseConfig(url)
		if err != nil {
			return nil, err
		}
		cc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return pgx.ConnectConfig(ctx, cc)
	}
	login := func(pw, db string) error {
		conn, err := connect(pgtest.AppUser, pw, db)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		var n int
		return conn.QueryRow(context.Background(), "SELECT 7").Scan(&n)
	}

	// A cleartext secret under SCRAM: the first login derives its verifier.
	for range 2 {
		require.NoError(t, login("plain-secret", "app"))
	}
	require.ErrorContains(t, login("wrong", "app"), "28P01")

	// A login held by PAUSE waits off the loop: logins landing on every loop meanwhile
	// (sessions are spread over the loops by number) go through at once.
	require.NoError(t, login("plain-secret", "other")) // the pool's first server login
	adm, err := connect("admin", "admin-secret", "pgbouncer")
	require.NoError(t, err)
	defer adm.Close(context.Background())
	_, err = adm.Exec(context.Background(), "PAUSE other")
	require.NoError(t, err)
	held := make(chan error, 1)
	go func() { held <- login("plain-secret", "other") }()
	select {
	case err := <-held:
		t.Fatalf("a login to a paused database went through: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	for range 6 {
		start := time.Now()
		require.NoError(t, login("plain-secret", "app"))
		require.Less(t, time.Since(start), 5*time.Second, "a login waited behind a held one")
	}
	_, err = adm.Exec(context.Background(), "RESUME other")
	require.NoError(t, err)
	select {
	case err := <-held:
		require.NoError(t, err, "the held login after RESUME")
	case <-time.After(20 * time.Second):
		t.Fatal("the held login did not finish after RESUME")
	}

	// auth_type plain against a SCRAM verifier: each login derives the client's key.
	next := h.srv.Config().Clone()
	require.NoError(t, config.Set(next, "auth_type", "plain"))
	v := auth.NewVerifier("scram-secret", auth.NewSalt(), 4096)
	creds[pgtest.AppUser] = config.Credential{User: pgtest.AppUser, Password: v.String()}
	require.NoError(t, h.srv.Reload(next, creds))
	require.NoError(t, login("scram-secret", "app"))
	require.ErrorContains(t, login("plain-secret", "app"), "28P01")

	started := proxy.LoopLogins(h.srv) - before
	if loops {
		require.GreaterOrEqual(t, started, uint64(14), "logins started on the loops")
	} else {
		require.Zero(t, started, "logins started on a loop with client_loop off")
	}
}

// A client that logged in on a loop waits for its first request there as the bare socket
// it logged in with: no net.Conn, no poll descriptor of the runtime's, and is served from
// it (its first request used to give it a net.Conn); when the server holds many clients,
// one that stays idle is parked at the loop's next sweep without a descriptor being
// duplicated, and its first request then resumes it as any parked client. Every client's
// queries are answered throughout.
func TestLoggedInClientsWaitBare(t *testing.T) {
	loops := os.Getenv("PGMUX_CLIENT_LOOP") != "0"
	h := startProxy(t, harnessOpts{extra: map[string]string{"max_client_conn": "1000"}})
	open := func(n int) []*pgx.Conn {
		conns := make([]*pgx.Conn, n)
		for i := range conns {
			conns[i] = h.connect(t, pgtest.AppUser, "app", true)
		}
		return conns
	}
	query := func(conns []*pgx.Conn) {
		for i, c := range conns {
			var got int
			require.NoError(t, c.QueryRow(context.Background(), "SELECT $1::int", i).Scan(&got))
			require.Equal(t, i, got)
		}
	}
	counts := func() [3]int {
		r, d, c := proxy.ClientConns(h.srv)
		return [3]int{r, d, c}
	}

	first := open(20)
	if !loops {
		require.Equal(t, [3]int{0, 0, 20}, counts(), "raw, detached, with a net.Conn")
		query(first)
		return
	}
	require.Equal(t, [3]int{20, 0, 0}, counts(), "idle since their logins: bare sockets")
	query(first)
	// Served once: still their bare sockets, the first request too, which found the pool
	// empty: it waited on the loop for the connection the pool dialed for it.
	served := counts()
	require.Equal(t, [3]int{20, 0, 0}, served, "served from their bare sockets")

	more := open(280) // 300 clients: past eagerParkClients
	require.Eventually(t, func() bool {
		c := counts()
		// (the 20 served ones stay on the loop as they are until their park delay)
		return c[1] >= 280 && c[2] == served[2]
	}, 10*time.Second, 50*time.Millisecond, "the bare clients idle since their logins parked at the sweep, no net.Conn made for them")
	query(more)
	query(first)
}

// TestLoginCoroutinesReused: logins on the loops run on login coroutines that are kept
// for the next login: a hundred clients logging in one after the other (some with a
// wrong password, whose login fails) make about one coroutine per loop, where each login
// made its own before. Under PGMUX_CLIENT_LOOP=0 logins run on goroutines and make
// none.
func TestLoginCoroutinesReused(t *testing.T) {
	loops := os.Getenv("PGMUX_CLIENT_LOOP") != "0"
	h := startProxy(t, harnessOpts{extra: map[string]string{"auth_type": "scram-sha-256"}})
	creds := map[string]config.Credential{pgtest.AppUser: {User: pgtest.AppUser, Password: "secret"}}
	require.NoError(t, h.srv.Reload(h.srv.Config().Clone(), creds))
	login := func(pw string) error {
		url := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/app?sslmode=disable", pgtest.AppUser, pw, h.port)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(ctx, "SELECT 7").Scan(&n); err != nil {
			return err
		}
		if n != 7 {
			return fmt.Errorf("got %d", n)
		}
		return nil
	}
	require.NoError(t, login("secret")) // the pool's server, and the loops' first workers
	made, started := proxy.LoginWorkersMade(), proxy.LoopLogins(h.srv)
	for i := range 100 {
		if i%10 == 5 {
			require.ErrorContains(t, login("wrong"), "28P01")
			continue
		}
		require.NoError(t, login("secret"), "login %d", i)
	}
	if !loops {
		require.Zero(t, proxy.LoginWorkersMade()-made)
		require.Zero(t, proxy.LoopLogins(h.srv)-started)
		return
	}
	require.EqualValues(t, 100, proxy.LoopLogins(h.srv)-started, "every login ran on a loop")
	// One per loop; a loop whose sweep saw no login for a second (a slow machine, logins
	// spread over the loops) retires its idle worker and makes another: a few more. With
	// no reuse it is one per login.
	require.LessOrEqual(t, proxy.LoginWorkersMade()-made, uint64(proxy.Loops(h.srv)+10),
		"login coroutines made for 100 logins one after the other")
}

// TestLoginRegistersItsClientOnce: a client that logs in on a loop is put in the loop's
// epoll set once (EPOLL_CTL_ADD at its login's start) and waits there for its first
// request with that registration: no EPOLL_CTL_MOD of the same events after its login
// (one system call a login, each connection of pgbench -C) unless a login write waited.
func TestLoginRegistersItsClientOnce(t *testing.T) {
	if os.Getenv("PGMUX_CLIENT_LOOP") == "0" {
		t.Skip("logins run on goroutines with client_loop off")
	}
	h := startProxy(t, harnessOpts{})
	warm := h.connect(t, pgtest.AppUser, "app", true)
	_, err := warm.Exec(context.Background(), "SELECT 1")
	require.NoError(t, err)
	var adds, mods atomic.Int32
	stop := evloop.SeeCtl(func(op int) {
		switch op {
		case syscall.EPOLL_CTL_ADD:
			adds.Add(1)
		case syscall.EPOLL_CTL_MOD:
			mods.Add(1)
		}
	})
	defer stop()
	started := proxy.LoopLogins(h.srv)
	for range 20 {
		c, err := h.tryConnect(pgtest.AppUser, "app", true)
		require.NoError(t, err)
		require.NoError(t, c.Close(context.Background()))
	}
	stop()
	require.EqualValues(t, 20, proxy.LoopLogins(h.srv)-started, "logins on the loops")
	require.GreaterOrEqual(t, adds.Load(), int32(20), "a registration a login")
	require.Zero(t, mods.Load(), "registrations made again")
}
