package pgtest

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"
)

// Roles, passwords and databases every Server provides. See the package doc for
// the authentication method each role meets over TCP.
const (
	SuperUser = "postgres"

	MD5User     = "md5user"
	MD5Password = "md5pass"

	ScramUser     = "scramuser"
	ScramPassword = "scrampass"

	PlainUser     = "plainuser"
	PlainPassword = "plainpass"

	AppUser     = "app"
	AppPassword = "apppass"
	AppDB       = "app"
)

// Environment variables read by this package.
const (
	EnvURL = "PGMUX_TEST_PG_URL"
	EnvBin = "PGMUX_PG_BIN"
	EnvCI  = "CI"
	// EnvRequireAll makes every test that would skip for a missing tool fail
	// instead, as in CI; `make test` sets it.
	EnvRequireAll = "PGMUX_REQUIRE_ALL"
)

// startTimeout bounds initdb, start and bootstrap of one server.
const startTimeout = 3 * time.Minute

// shared is the one server of this test binary. It is the package's only
// mutable state: TestMain and the tests have nothing else in common to carry it.
// mu is held while the server starts, so concurrent first calls wait for it.
var shared struct {
	mu   sync.Mutex
	done bool
	srv  *Server
	err  error
}

// Start returns the PostgreSQL server shared by all tests of this test binary,
// starting it on the first call. It skips the test when no PostgreSQL is
// available, or fails it when CI is set. Pair it with Run in TestMain so the
// server stops when the tests end.
func Start(tb testing.TB) *Server {
	tb.Helper()
	shared.mu.Lock()
	if !shared.done {
		shared.srv, shared.err = startShared()
		shared.done = true
		if shared.err == nil {
			tb.Logf("pgtest: %s", shared.srv)
		}
	}
	srv, err := shared.srv, shared.err
	shared.mu.Unlock()
	if err != nil {
		fail(tb, err)
	}
	return srv
}

// StartPrivate starts a server for this test alone and stops it at cleanup.
// Use it for tests that restart or break the server. It always starts a local
// server, even when PGMUX_TEST_PG_URL is set.
func StartPrivate(tb testing.TB) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := startCluster(ctx)
	if err != nil {
		fail(tb, err)
	}
	tb.Cleanup(srv.Stop)
	tb.Logf("pgtest: private %s", srv)
	return srv
}

// Run runs the tests and then stops the shared server if one was started.
// Call it from TestMain: os.Exit(pgtest.Run(m)).
func Run(m *testing.M) int {
	code := m.Run()
	shared.mu.Lock()
	srv := shared.srv
	shared.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
	return code
}

// InCI reports whether integration tests must fail rather than skip when
// PostgreSQL or another tool they need is missing: the CI environment variable
// is set, or PGMUX_REQUIRE_ALL (which `make test` sets) is.
func InCI() bool {
	for _, name := range []string{EnvCI, EnvRequireAll} {
		if v := os.Getenv(name); v != "" && v != "false" && v != "0" {
			return true
		}
	}
	return false
}

func startShared() (*Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if raw := os.Getenv(EnvURL); raw != "" {
		return openExternal(ctx, raw)
	}
	return startCluster(ctx)
}

// unavailableError means this machine cannot provide PostgreSQL at all, as
// opposed to a server that failed to start.
type unavailableError struct{ reason string }

func (e *unavailableError) Error() string { return e.reason }

// fail ends the test for err: a skip when PostgreSQL is unavailable outside CI,
// a failure otherwise.
func fail(tb testing.TB, err error) {
	tb.Helper()
	var u *unavailableError
	if errors.As(err, &u) {
		skipOrFail(tb, u.reason)
		return
	}
	tb.Fatalf("pgtest: %v", err)
}

// skipOrFail skips the test, or fails it in CI where integration tests must run.
func skipOrFail(tb testing.TB, reason string) {
	tb.Helper()
	if InCI() {
		tb.Fatalf("pgtest: %s (%s or %s is set: integration tests must not skip; scripts/deps.sh installs what they need)", reason, EnvCI, EnvRequireAll)
		return
	}
	tb.Skipf("pgtest: %s", reason)
}
