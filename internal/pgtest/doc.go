// Package pgtest gives integration tests a real PostgreSQL server.
//
// It owns the life of that server: finding the binaries, initdb into a temporary
// directory, the configuration (pg_hba methods, roles, settings), start, restart
// and stop. It does not know about pgmux itself; tests point pgmux at the
// Server's Host and Port.
//
// # Use
//
// One server is shared by all tests of a test binary (one package). Start it
// lazily from any test and stop it after the tests:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
//
//	func TestSomething(t *testing.T) {
//		pg := pgtest.Start(t)
//		db := pg.NewDatabase(t, "something") // private database, dropped at cleanup
//		conn := pg.Connect(t, pgtest.AppUser, pgtest.AppPassword, db)
//		...
//	}
//
// Tests that break the server on purpose (Restart) and must not disturb other
// tests can use StartPrivate, which starts a dedicated server stopped at cleanup.
//
// Replication: primary.StartStandby(t) starts a streaming hot standby of a server
// pgtest started (pg_basebackup -R, its own port, extra configuration lines
// allowed); Promote promotes it, StopPostmaster stops the primary for a failover.
//
// If a test binary dies without calling Run (panic, -timeout, SIGKILL) a small
// watchdog process notices that the test process is gone, stops PostgreSQL
// (immediate mode) and removes the temporary directory, so nothing leaks.
//
// # The server
//
// The managed server listens on 127.0.0.1 (and ::1 when the host has IPv6) on a
// free port chosen by the kernel, and on a Unix socket in SocketDir. Over TCP
// every role uses a different authentication method, so pooler tests can cover
// each one against a real server:
//
//	role       password    TCP method     stored as
//	postgres   (none)      trust          superuser
//	md5user    md5pass     md5            md5 hash
//	scramuser  scrampass   scram-sha-256  SCRAM verifier
//	plainuser  plainpass   password       SCRAM verifier (cleartext on the wire)
//	app        apppass     trust          owner of database "app"
//	any other  -           trust
//
// The Unix socket trusts everyone. Every role may create objects in the public
// schema of "app" and of databases made by NewDatabase. Settings favour speed
// over durability (fsync, synchronous_commit and full_page_writes are off);
// max_connections is 300. The server log is LogFile.
//
// # Environment
//
//	PGMUX_TEST_PG_URL  use this running server instead of starting one, e.g.
//	                   postgres://postgres@127.0.0.1:5432/postgres. The URL's user
//	                   must be a superuser; the roles and database above are
//	                   created if missing (existing ones are left alone), but
//	                   pg_hba.conf is the operator's business. Restart and
//	                   StartPrivate still need local binaries.
//	PGMUX_PG_BIN       directory holding initdb, pg_ctl and postgres. Default: the
//	                   newest /usr/lib/postgresql/*/bin (Debian, Ubuntu), then
//	                   /usr/pgsql-*/bin (RHEL), then initdb on PATH.
//	CI                 when set (and not "false" or "0"), a missing PostgreSQL
//	                   fails the test instead of skipping it: integration tests
//	                   must run in CI.
//
// When the test process runs as root, initdb and the server run as the
// "postgres" OS user (created with useradd if missing), because PostgreSQL
// refuses to run as root; the temporary directory is then under /tmp, mode 0755.
package pgtest
