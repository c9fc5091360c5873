package proxy

import (
	"context"
	"encoding/hex"
	"strings"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/sqlscan"
	"github.com/pgmux/pgmux/protocol/startup"
	"github.com/pgmux/pgmux/protocol/wire"
)

// A reported parameter a client gives at startup is told back at login as PostgreSQL
// reports it, which is not always as the client wrote it: TimeZone=utc is "UTC",
// europe/paris "Europe/Paris" (the zone file's name), +3 "<+03>-03"; IntervalStyle and
// the booleans are spelled as their enum ("postgres", "on"); client_encoding by its
// encoding's name ("utf8" is "UTF8", but "UNICODE" stays itself, a PostgreSQL exception
// for old drivers); application_name is cut at 63 bytes and loses its non-ASCII bytes.
// Most of that needs the server's own tables (the zone files, the encoding aliases), so
// the pool's servers are asked, once per distinct value: the answer is kept in the
// pool's entry (poolEntry.spellings), and the logins after it look it up. A value that
// is the server's own, a plain application_name, a DateStyle (dateStyle spells those) or
// one of track_extra_parameters is not asked about; an application's clients send the
// same values, so nearly every login finds its answer kept. Nothing of this runs after
// login.
//
// The startup setting replayed on each server is kept in that spelling too: it sets the
// same value, and the server's report of it is then no change to relay.

// maxSpellings bounds the values an entry keeps the spelling of; past it a new value
// is asked about at each login that sends it.
const maxSpellings = 256

// spelling returns how PostgreSQL reports the reported parameter name set at startup to
// v, where base is the server's value at login (its report), and whether that is known
// without asking a server. It allocates nothing: it runs at every login.
func (e *poolEntry) spelling(name, v, base string) (string, bool) {
	if name == "DateStyle" {
		if d, ok := dateStyle(v, base); ok {
			return d, true
		}
		// Refused by PostgreSQL, or quoted: the server says which (and is asked once
		// for a value it takes).
	}
	switch {
	case v == base:
		return v, true
	case name == "application_name" && len(v) < 64 && plainASCII(v):
		return v, true
	case !builtinTracked(name):
		// One of track_extra_parameters: a string setting PostgreSQL keeps as written
		// (a custom one, search_path), whose values may differ per client (a tenant's
		// schema), each of which would cost a server at login.
		return v, true
	case e == nil:
		return "", false
	}
	var buf [128]byte
	key := spellingKey(buf[:0], name, v)
	e.mu.Lock()
	s, ok := e.spellings[string(key)]
	e.mu.Unlock()
	return s, ok
}

// builtinTracked reports whether name, as trackedName returns it, is one of
// trackedParams rather than of track_extra_parameters.
func builtinTracked(name string) bool {
	for _, n := range trackedParams {
		if n == name {
			return true
		}
	}
	return false
}

func spellingKey(b []byte, name, v string) []byte {
	return append(append(append(b, name...), 0), v...)
}

// plainASCII reports whether v has only printable ASCII, which PostgreSQL keeps as it
// is in application_name.
func plainASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 32 || v[i] > 126 {
			return false
		}
	}
	return true
}

// spellStart puts in start (the login's own) each reported parameter's value as the
// server reports it, before initParams tells the client them: known here (spelling), or
// asked of one of the pool's servers. The other startup values are checked the same way
// (checkable), once per distinct value: PostgreSQL refuses a login whose value it does
// not take (TimeZone=bogus, statement_timeout=abc, a name it does not know), and so does
// pgmux, with the server's error as the login's FATAL; before, the value was accepted
// and then dropped by the first server it was set on. A server that cannot be had within
// the login's time leaves the values as the client wrote them (the link's setting of
// them then meets any refusal, as before).
//
// It returns the NOTICE PostgreSQL sends at such a login for an application_name it cuts
// (truncNotice), nil for none.
func (s *Session) spellStart(cfg *config.Config, server pool.Params, start []startup.Param) ([]byte, error) {
	var asks []spellAsk
	app := -1
	var appRaw string
	for i := range start {
		p := &start[i]
		if e := localRefusal(p.Key, p.Value); e != nil {
			return nil, e
		}
		name, tracked := trackedName(cfg, p.Key)
		if name == "application_name" && len(p.Value) >= nameLen {
			app, appRaw = i, p.Value
		}
		switch {
		case tracked:
			base, known := server.Get(name)
			if !known && reportedOnly[name] {
				continue
			}
			if v, ok := s.entry.spelling(name, p.Value, base); ok {
				p.Value = v
				continue
			}
		case !checkable(p.Key) || s.entry.checked(p.Key, p.Value):
			continue
		}
		asks = append(asks, spellAsk{key: p.Key, name: name, value: p.Value, at: i, tracked: tracked})
	}
	if len(asks) == 0 {
		return truncNotice(server, app, appRaw), nil
	}
	var spelled []string
	var refused []*pgerr.Error
	s.offload(func() {
		ctx, cancel := s.loginWaitContext(cfg)
		defer cancel()
		var err error
		if spelled, refused, err = s.entry.askSpellings(ctx, asks, grantsSet(server)); err != nil {
			s.log().Debug("asking a server how it reports startup values failed", zap.Error(err))
		}
	})
	for i, a := range asks {
		if i < len(refused) && refused[i] != nil {
			return nil, refused[i].AtSeverity(pgerr.SeverityFatal)
		}
		if i < len(spelled) && spelled[i] != "" && a.tracked {
			start[a.at].Value = spelled[i]
		}
	}
	return truncNotice(server, app, appRaw), nil
}

// nameLen is PostgreSQL's NAMEDATALEN: a name is cut to one byte less.
const nameLen = 64

// truncNotice is the NOTICE PostgreSQL sends when a login's application_name (raw, at
// the login's values' index at, -1 for none) is longer than a name, which it cuts to 63
// bytes, not within a character of the server's encoding, and says so (42622
// name_too_long). nil for none.
func truncNotice(server pool.Params, at int, raw string) []byte {
	if at < 0 || len(raw) < nameLen {
		return nil
	}
	cut := nameLen - 1
	if enc, _ := server.Get("server_encoding"); enc == "UTF8" {
		for cut > 0 && raw[cut]&0xC0 == 0x80 { // the next byte continues a character
			cut--
		}
	}
	e := &pgerr.Error{Severity: "NOTICE", Code: "42622",
		Message: "identifier \"" + raw + "\" will be truncated to \"" + raw[:cut] + "\""}
	return e.AppendNotice(nil)
}

// A spellAsk is one startup value a login asks a server about: the parameter as the
// client wrote its name (key: PostgreSQL's error names it so), its reported name for a
// tracked one, and where it is in the login's values.
type spellAsk struct {
	key, name, value string
	at               int
	tracked          bool
}

// memoKey is the ask's key in poolEntry.spellings: the reported name for a tracked
// parameter (spelling looks it up so), the name as written for the others.
func (a spellAsk) memoKey() []byte {
	if a.tracked {
		return spellingKey(nil, a.name, a.value)
	}
	return spellingKey(nil, a.key, a.value)
}

// checkable reports whether a login asks a server whether it takes the untracked startup
// parameter key. Not asked: pgmux's own and custom settings (a dotted name, which
// PostgreSQL takes as written unless its module is loaded) and search_path, whose values
// often differ per client (a tenant's id or schema): each new one would cost a server
// round trip at login. What PostgreSQL checks of those at login, their syntax, is
// checked without a server (localRefusal).
func checkable(key string) bool {
	return !strings.Contains(key, ".") && !strings.EqualFold(key, "search_path")
}

// checked reports whether a server took the untracked startup value key=v before.
func (e *poolEntry) checked(key, v string) bool {
	if e == nil {
		return false
	}
	var buf [128]byte
	k := spellingKey(buf[:0], key, v)
	e.mu.Lock()
	_, ok := e.spellings[string(k)]
	e.mu.Unlock()
	return ok
}

// askSpellings sets each of asks in a transaction of its own on one of e's servers, with
// set_config(..., true), which returns the value as the server reports it and lasts only
// as long as that transaction, and keeps the answers. It returns them, "" for a value
// the server refused or did not check, and the server's refusals by ask (nil where none).
func (e *poolEntry) askSpellings(ctx context.Context, asks []spellAsk, grants bool) ([]string, []*pgerr.Error, error) {
	l := &spellLessee{done: make(chan struct{}), vals: make([]string, len(asks)), ok: make([]bool, len(asks)),
		errs: make([]*pgerr.Error, len(asks)), marks: make([]string, len(asks))}
	c, err := e.pool.Acquire(ctx, l)
	if err != nil {
		return nil, nil, err
	}
	var b []byte
	for _, a := range asks {
		b = wire.Query(b, a.sql(grants))
	}
	if err = c.Wr.Write(b); err == nil {
		err = c.Wr.Flush()
	}
	if err != nil {
		c.Discard(err)
		return nil, nil, err
	}
	select {
	case <-l.done:
	case <-ctx.Done():
		c.Discard(ctx.Err())
		return nil, nil, ctx.Err()
	}
	refused := make([]*pgerr.Error, len(asks))
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, a := range asks {
		if startRefusal(l.errs[i]) {
			refused[i] = l.errs[i]
		}
		if l.marks[i] != "" {
			refused[i] = a.marked(l.marks[i])
			l.ok[i] = refused[i] == nil
		}
		if !l.ok[i] {
			l.vals[i] = ""
			continue
		}
		if e.spellings == nil {
			e.spellings = make(map[string]string)
		}
		if len(e.spellings) < maxSpellings {
			e.spellings[string(a.memoKey())] = l.vals[i]
		}
	}
	return l.vals, refused, l.err
}

// startRefusal reports whether a server's error for a spelling query is its refusal of
// the value, which PostgreSQL would have sent as the login's FATAL: one that refuses a
// setting (refusal), or a transaction setting after the snapshot (25001). Not a value
// whose bytes are not in the database's encoding (22021): the query's own conversion
// refuses it, PostgreSQL's login does not. Anything else (a cancel) leaves the value to
// the link, as before.
func startRefusal(pe *pgerr.Error) bool {
	return pe != nil && (pe.Code == "25001" || refusal(pe) && pe.Code != "22021")
}

// spellSQL is the query that returns how the server reports name set to v. The value
// goes in and out as hexadecimal bytes in the database's encoding, as PostgreSQL takes a
// startup value's bytes: the server's connection may have another client's
// client_encoding (or bytea_output), which would otherwise convert them.
func spellSQL(name, v string) string {
	return "SELECT " + spellExpr(name, v)
}

func spellExpr(name, v string) string {
	return "pg_catalog.encode(pg_catalog.convert_to(pg_catalog.set_config(" + sqlscan.QuoteLiteral(name) +
		", pg_catalog.convert_from(pg_catalog.decode('" + hex.EncodeToString([]byte(v)) +
		"', 'hex'), pg_catalog.current_setting('server_encoding')), true), " +
		"pg_catalog.current_setting('server_encoding')), 'hex')"
}

// spellLessee reads the answers to askSpellings' queries on the connection's reader
// goroutine, one per query (a row, or an error), and gives the connection back at the
// last ReadyForQuery. The reader writes vals, ok and err, then closes done; the asking
// goroutine reads them only after done is closed.
type spellLessee struct {
	done chan struct{}
	vals []string
	ok   []bool
	errs []*pgerr.Error
	// marks are the answers that are not a value but what the server found of one
	// (startask.go), by query: "" for none.
	marks []string
	i     int // the query being answered
	err   error
}

func (l *spellLessee) Pump(c *pool.Conn) error {
	return pumpAnswers(c, l, len(l.vals), "a spelling query", func(typ byte, m []byte) {
		switch typ {
		case 'D':
			v, ok := firstColumn(wire.Body(m))
			if ok && strings.HasPrefix(v, "!") && l.i < len(l.marks) {
				l.marks[l.i] = v[1:]
			} else if b, err := hex.DecodeString(v); ok && err == nil && l.i < len(l.vals) {
				l.vals[l.i], l.ok[l.i] = string(b), true
			}
		case 'E':
			if l.i < len(l.ok) {
				l.ok[l.i] = false
				l.errs[l.i], _ = pgerr.Parse(wire.Body(m))
			}
		case 'S':
			// Before PostgreSQL 14 a change is reported as it is made, and again as the
			// transaction's end takes it back: the connection's parameters follow.
			if k, v, err := wire.ParseParameterStatus(wire.Body(m)); err == nil {
				c.Params.Set(string(k), string(v))
				c.NoteParameter(string(k), string(v))
			}
		case 'Z':
			l.i++
		}
	}, l.finish)
}

func (l *spellLessee) finish(err error) {
	l.err = err
	close(l.done)
}

// firstColumn is the first column of a DataRow body, and whether it is there and not
// NULL.
func firstColumn(body []byte) (string, bool) {
	cols, rest, err := wire.Int16(body)
	if err != nil || cols < 1 {
		return "", false
	}
	n, rest, err := wire.Int32(rest)
	if err != nil || n < 0 || int(n) > len(rest) {
		return "", false
	}
	return string(rest[:n]), true
}
