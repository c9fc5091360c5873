package proxy

import (
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
)

// Where a request that begins a read-only transaction may go. routeRead sends it to a
// standby on its first statement (BEGIN READ ONLY and its kin), and everything the client
// sends until the link ends follows it there: the rest of the request, and requests sent
// before its answer came. What runs after the transaction's COMMIT, END or ROLLBACK is
// outside it and may write, which a standby refuses with 25006 where a direct connection
// to the primary succeeds. So:
//
//   - a simple Query that goes on after the end goes to the primary (moreAfterEnd);
//   - an extended-protocol request goes to a standby only when it has arrived whole (its
//     Sync is buffered) and nothing but Flush comes between the end's Execute and that
//     Sync (roTxRequestFits). A Flush-driven request, or one not all here, may still end
//     the transaction and write in what has not arrived: the primary. Requests buffered
//     after its Sync are looked at in the same way, until the one that ends the
//     transaction;
//   - a request sent while the standby still answers (pipelined after the end) waits for
//     that answer before it is routed (awaitReplicaUnlink).
//
// A request sent inside a read-only transaction already open on a standby that ends it
// and goes on ('COMMIT; INSERT ...', or a batch of the same) is split at the end
// (replica_split.go). One that switches the open transaction to read-write (SET
// TRANSACTION READ WRITE after BEGIN READ ONLY) moves it to the primary while only its
// BEGIN has run (replica_move.go).

// moreAfterEnd reports whether a Query that begins a read-only transaction goes on after
// ending it (COMMIT, END or ROLLBACK, then more): what follows is outside that
// transaction, may write, and must run on the primary (on a standby a write there failed
// with 25006). The text is split only on this rare path.
func moreAfterEnd(sql string) bool {
	sts := sqlscan.Scan(sql)
	for i, st := range sts {
		if endKind(st.Kind) {
			return i < len(sts)-1
		}
	}
	return false
}

func endKind(k sqlscan.Kind) bool { return k == sqlscan.KindCommit || k == sqlscan.KindRollback }

// endsTx reports whether an extended-protocol statement (one statement) ends the
// transaction: COMMIT, END, ROLLBACK or ABORT, but not ROLLBACK TO SAVEPOINT or the
// PREPARED forms.
func endsTx(q string) bool {
	switch sqlscan.KeywordOf(sqlscan.FirstKeyword(q)) {
	case sqlscan.KwCommit, sqlscan.KwEnd, sqlscan.KwAbort, sqlscan.KwRollback:
	default:
		return false
	}
	sts := sqlscan.Scan(q)
	return len(sts) > 0 && endKind(sts[0].Kind)
}

// roTxRequestFits reports whether the client's extended-protocol request that begins a
// read-only transaction with the current message may run on a standby (above): the
// buffered messages hold its Sync, and no statement is executed after the transaction's
// end in the request that ends it, if that one is buffered. An Execute of a statement
// whose text pgmux does not know, or a message other than Parse, Bind, Describe, Execute,
// Close, Flush and Sync, sends it to the primary.
func (s *Session) roTxRequestFits() bool {
	buf := s.rd.Window()
	parsed := map[string]string{} // statement name: text, parsed in what is buffered
	portals := map[string]string{}
	synced, ended := false, false
	for off := 0; ; {
		typ, body, end, ok := frameAt(buf, off)
		if !ok {
			return synced && !ended // the rest is another request, inside the transaction
		}
		off = end
		switch {
		case typ == 'S' && ended:
			return true // what follows is routed anew (awaitReplicaUnlink)
		case typ == 'S':
			synced = true
			continue
		case typ == 'H':
			continue
		case ended:
			return false // more after the end, in the same request
		}
		switch typ {
		case 'P':
			name, q, _, ok := link.ParseFields(body)
			if !ok {
				return false
			}
			parsed[string(name)] = string(q)
		case 'B':
			portal, name, _, ok := link.BindFields(body)
			if !ok {
				return false
			}
			q, ok := parsed[string(name)]
			if !ok {
				if q, ok = s.stmtText(name); !ok {
					return false
				}
			}
			portals[string(portal)] = q
		case 'E':
			portal, _, err := wire.CString(body)
			q, ok := portals[string(portal)]
			if err != nil || !ok || sqlscan.PrimaryOnly(q) {
				return false
			}
			ended = endsTx(q)
		case 'D', 'C':
		default:
			return false
		}
	}
}

// frameAt splits the whole message at off in buf: its type, its body and where it ends.
// ok is false when buf does not hold it whole.
func frameAt(buf []byte, off int) (typ byte, body []byte, end int, ok bool) {
	if len(buf)-off < wire.HeaderLen {
		return 0, nil, 0, false
	}
	typ = buf[off]
	l := int(uint32(buf[off+1])<<24 | uint32(buf[off+2])<<16 | uint32(buf[off+3])<<8 | uint32(buf[off+4]))
	end = off + 1 + l
	if l < 4 || end > len(buf) {
		return 0, nil, 0, false
	}
	return typ, buf[off+wire.HeaderLen : end], end, true
}
