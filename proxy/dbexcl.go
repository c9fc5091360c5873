package proxy

import (
	"time"
	"unsafe"

	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
)

// Statements that need a database to themselves.
//
// PostgreSQL refuses DROP DATABASE, ALTER DATABASE … RENAME or SET TABLESPACE, and
// CREATE DATABASE … TEMPLATE while any other session is connected to that database
// (55006 "database … is being accessed by other users"); it waits up to five seconds for
// such sessions to end first. pgmux's idle server connections to it are sessions no
// client has: a test runner that drops or clones its test database through the app's
// URL (Django's `manage.py test`, Rails' `db:test:prepare`) got 55006 where a direct
// connection, whose own sessions it had closed, succeeds. So before such a statement
// goes to the server, pgmux closes its idle server connections to that database on the
// same host, in every pool (each user's), and the shared LISTEN connection of that
// database when no client listens any more (it stays open after the last UNLISTEN);
// connections in use stay, as a direct connection's other sessions would, and the
// statement fails as it would there. Before a Query (forwardQuery) and a Parse (by
// rewriteParse where pgmux handles statement names, else freeDatabaseParse), whatever
// prepared_statement_mode and max_prepared_statements are.
//
// A server whose client has only just left is not idle yet: still leased until pgmux
// has read the client's Terminate, or running server_reset_query (session mode), or a
// health check. So for the exclusiveWait that PostgreSQL waits, each such pool closes
// the servers that were out then as they come back, instead of keeping them idle
// (pool.CloseIdleFor); a server a client keeps (or that goes straight to a queued
// client, or is leased afterwards) stays.

// exclusiveWait is how long PostgreSQL waits for the other sessions of a database to end
// before it refuses a statement that needs it alone (CountOtherDBBackends: 5 s).
const exclusiveWait = 5 * time.Second

// freeDatabase closes the idle server connections that the statement q (lead l) needs
// gone (sqlscan.ExclusiveDatabase), and those out now as they come back.
func (s *Session) freeDatabase(q string, l sqlscan.Lead) {
	switch l.Keyword {
	case sqlscan.KwDrop, sqlscan.KwAlter, sqlscan.KwCreate:
	default:
		return
	}
	name, ok := sqlscan.ExclusiveDatabase(q)
	if !ok {
		return
	}
	db, _, _ := s.entry.snapshot()
	host := db.HostKey()
	for _, e := range s.srv.pools.all() {
		if d, _, _ := e.snapshot(); d.DBName == name && d.HostKey() == host {
			e.pool.CloseIdleFor(exclusiveWait)
			if l := s.srv.hub.Get(e.key.db); l != nil {
				l.DropIdle()
			}
		}
	}
}

// freeDatabaseParse is freeDatabase for the client's Parse of n bytes, about to be
// forwarded as written (prepPass: max_prepared_statements = 0, session mode).
func (s *Session) freeDatabaseParse(n int) error {
	m, err := s.rd.Peek(n)
	if err != nil {
		return err
	}
	body := wire.Body(m)
	f := s.fieldsOf(body, s.rd.Seq())
	if !f.OK() {
		return nil
	}
	query := f.Second(body)
	if len(query) == 0 {
		return nil
	}
	q := unsafe.String(&query[0], len(query)) // a view of the reader's buffer, not kept
	s.freeDatabase(q, s.lead(q))
	return nil
}
