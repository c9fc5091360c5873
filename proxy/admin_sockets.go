package proxy

import (
	"encoding/binary"
	"slices"

	"github.com/pgmux/pgmux/proxy/console"
)

// The console's low-level views, with PgBouncer 1.25's columns (admin.c): SHOW FDS,
// SOCKETS, ACTIVE_SOCKETS, DNS_HOSTS and DNS_ZONES. Where PgBouncer reports something
// pgmux does not have, the value is NULL, never a made-up one.

// debugCols are the columns SHOW SOCKETS and ACTIVE_SOCKETS add to SHOW CLIENTS' and
// SERVERS': in PgBouncer, positions in the socket's own buffer (sbuf): where reading and
// parsing stand, what is left of the packet, what is queued to send. pgmux has no such
// buffer: a client's and a server's bytes go through buffered readers and writers that
// their relays own, which the console cannot read without racing with them. They are
// NULL.
func debugCols() []console.Column {
	return []console.Column{console.Int4("recv_pos"), console.Int4("pkt_pos"), console.Int4("pkt_remain"),
		console.Int4("send_pos"), console.Int4("send_remain"), console.Int4("pkt_avail"), console.Int4("send_avail")}
}

// noDebug are debugCols' values.
var noDebug = []any{nil, nil, nil, nil, nil, nil, nil}

func (s *Server) showSockets() []byte { return s.sockets(false) }

func (s *Server) showActiveSockets() []byte { return s.sockets(true) }

// sockets is SHOW SOCKETS: the rows of SHOW CLIENTS and SHOW SERVERS, with PgBouncer's
// list names as state (cl_active, cl_waiting, cl_login; sv_active, sv_idle, sv_tested,
// sv_login, and pgmux's sv_listener for a LISTEN connection), then debugCols. PgBouncer
// counts the console's own clients among cl_active, as SHOW CLIENTS does.
//
// With active, SHOW ACTIVE_SOCKETS: PgBouncer keeps the sockets whose buffer holds
// bytes. pgmux keeps the links moving bytes now, as SUSPEND judges them (relayQuiet): a
// client whose server's answer is being relayed to it or sits unflushed in its writer,
// and that client's server; and the console clients running a command, the one asking
// included, as PgBouncer lists the console client whose query it is answering (the
// query is still in that client's buffer).
func (s *Server) sockets(active bool) []byte {
	r := console.NewResult(nil, append(connListCols(), debugCols()...)...)
	busy := make(map[*Session]bool)
	var running map[*Session]bool
	if active {
		running = s.console.commandsRunning()
	}
	for _, c := range s.clientRows() {
		if active {
			if !running[c.sess] && c.sess.relayQuiet() {
				continue
			}
			busy[c.sess] = true
		}
		c.vals[colState] = "cl_" + c.vals[colState].(string)
		r.Row(append(c.vals, noDebug...)...)
	}
	for _, c := range s.serverRows() {
		if active && (c.link == nil || !busy[c.link]) {
			continue
		}
		c.vals[colState] = "sv_" + c.vals[colState].(string)
		r.Row(append(c.vals, noDebug...)...)
	}
	return r.Done("SHOW")
}

// showFDs is SHOW FDS with PgBouncer's columns. PgBouncer sends it to the process that
// takes over its sockets in an online restart (-R, takeover); pgmux has no online
// restart, so nothing reads it for that, and it is a read-only list of the descriptors
// PgBouncer would list: the listening sockets (task "pooler"), then each client's and
// each server connection's socket, with its peer's address, its cancel key (the
// BackendKeyData a client was given, a server's own) and the descriptor of the socket it
// is linked to (0 for none). The console's own clients are left out, and so are the
// sockets that speak TLS or are linked to one, as in PgBouncer, which cannot hand those
// over. The parameters PgBouncer lists are each socket's own: a client's, and a server's
// as the server last reported them (pool.Conn.Reported). password, scram_client_key and
// scram_server_key are always NULL: PgBouncer hands them to its successor, and pgmux has
// none to hand them to. Only admin_users may run it (console.run), as in PgBouncer: it
// shows cancel keys.
func (s *Server) showFDs() []byte {
	r := console.NewResult(nil, console.Int4("fd"), console.Text("task"), console.Text("user"),
		console.Text("database"), console.Text("addr"), console.Int4("port"), console.Int8("cancel"),
		console.Int4("link"), console.Text("client_encoding"), console.Text("std_strings"),
		console.Text("datestyle"), console.Text("timezone"), console.Text("password"),
		console.Bytea("scram_client_key"), console.Bytea("scram_server_key"))
	s.mu.Lock()
	lns := slices.Clone(s.listeners)
	s.mu.Unlock()
	for _, ln := range lns {
		addr, port := hostPort(ln.Addr(), s.Config().ListenPort)
		r.Row(sysFD(ln), "pooler", nil, nil, addr, port, int64(0), 0, nil, nil, nil, nil, nil, nil, nil)
	}
	registered := make(map[*Session]bool)
	for _, sess := range s.Sessions() {
		registered[sess] = true
	}
	tlsClient := make(map[*Session]bool)
	for _, c := range s.clientRows() {
		sess := c.sess
		tlsClient[sess] = c.vals[17] != ""
		fd := sess.clientFD()
		sv := sess.linkedServer()
		var link int
		if sv != nil {
			var tls bool
			if link, tls = sv.Socket(); tls {
				continue
			}
		}
		if sess.entry == nil || fd < 0 || tlsClient[sess] { // the console's; closed; TLS
			continue
		}
		var cancel int64
		if registered[sess] { // its key was set before Sessions' lock (register)
			// The 64 bits as a bigint: PgBouncer prints them unsigned, which a driver
			// reading an int8 refuses for half of its random keys, and now of pgmux's.
			cancel = int64(uint64(sess.cancelPID)<<32 | uint64(sess.cancelKey))
		}
		enc, std, ds, tz := sess.fdParams()
		r.Row(fd, "client", nullIfEmpty(c.vals[1].(string)), nullIfEmpty(c.vals[2].(string)), c.vals[5],
			c.vals[6], cancel, max(link, 0), enc, std, ds, tz, nil, nil, nil)
	}
	for _, c := range s.serverRows() {
		fd, tls := c.conn.Socket()
		if tls || fd < 0 {
			continue
		}
		link := int32(0)
		if c.link != nil {
			if tlsClient[c.link] {
				continue
			}
			link = max(c.link.clientFD(), 0)
		}
		cancel := uint64(c.conn.PID) << 32
		if k := c.conn.Key; len(k) == 4 {
			cancel |= uint64(binary.BigEndian.Uint32(k))
		}
		p := c.conn.Reported()
		r.Row(fd, "server", c.vals[1], c.vals[2], c.vals[5], c.vals[6], cancel, link,
			nullIfEmpty(p.ClientEncoding), nullIfEmpty(p.StdStrings), nullIfEmpty(p.DateStyle),
			nullIfEmpty(p.TimeZone), nil, nil, nil)
	}
	return r.Done("SHOW")
}

// clientFD is the descriptor of the client's socket (the one under TLS; while the
// client is parked without its net.Conn, the duplicate the parker waits on), or -1 once
// it is closed. Read under ncMu, for the console.
func (s *Session) clientFD() int32 {
	s.ncMu.Lock()
	defer s.ncMu.Unlock()
	switch {
	case s.ncEnd&ncClosed != 0 || s.nc == nil:
		return -1
	case s.rawFD >= 0:
		return s.rawFD
	}
	return s.fd
}

// fdParams are SHOW FDS' client_encoding, std_strings, datestyle and timezone of the
// client: its own values, or NULL while it logs in (the login writes them unlocked).
func (s *Session) fdParams() (enc, std, ds, tz any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == ClientLogin {
		return nil, nil, nil, nil
	}
	get := func(name string) any {
		v, _ := s.params.Get(name)
		return nullIfEmpty(v)
	}
	return get("client_encoding"), get("standard_conforming_strings"), get("DateStyle"), get("TimeZone")
}

// showDNSHosts is SHOW DNS_HOSTS with PgBouncer's columns and no rows: PgBouncer lists
// its DNS cache, and pgmux keeps none (each connection to a host name resolves it
// anew, through Go's resolver), as SHOW LISTS' dns_names of 0 says.
func (s *Server) showDNSHosts() []byte {
	r := console.NewResult(nil, console.Text("hostname"), console.Int8("ttl"), console.Text("addrs"))
	return r.Done("SHOW")
}

// showDNSZones is SHOW DNS_ZONES with PgBouncer's columns and no rows: PgBouncer lists
// the zones whose serial it watches (dns_zone_check_period, which pgmux ignores).
func (s *Server) showDNSZones() []byte {
	r := console.NewResult(nil, console.Text("zonename"), console.Int8("serial"), console.Int4("count"))
	return r.Done("SHOW")
}
