// Package muxtest is the shared harness of pgmux's integration tests: it writes
// pgbouncer.ini and userlist.txt files, serves pgmux in the test process on a port the
// kernel picks, logs it to a file whose tail is shown when a test fails, and has the
// client helpers (pgx connections, libpq environments, programs run with a timeout) the
// test packages under test/ share.
package muxtest
