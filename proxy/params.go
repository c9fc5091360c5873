package proxy

import (
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/startup"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
)

// trackedParams are the parameters PostgreSQL reports that follow a client from server to
// server, by lower-case name to the name the server reports.
var trackedParams = map[string]string{
	"client_encoding":               "client_encoding",
	"datestyle":                     "DateStyle",
	"timezone":                      "TimeZone",
	"intervalstyle":                 "IntervalStyle",
	"standard_conforming_strings":   "standard_conforming_strings",
	"application_name":              "application_name",
	"default_transaction_read_only": "default_transaction_read_only",
}

// reportedOnly are the tracked parameters a client is told at login only where the
// server reports them: PostgreSQL reports default_transaction_read_only since 14.
var reportedOnly = map[string]bool{"default_transaction_read_only": true}

// trackedName returns the canonical name of a tracked parameter.
func trackedName(cfg *config.Config, name string) (string, bool) {
	lower := strings.ToLower(name)
	if c, ok := trackedParams[lower]; ok {
		return c, true
	}
	for _, x := range cfg.TrackExtraParameters {
		if strings.EqualFold(x, name) {
			return x, true
		}
	}
	return "", false
}

// startupParams collects the client's run-time parameters from its startup packet and
// its `options`, minus ignore_startup_parameters.
func (s *Session) startupParams(cfg *config.Config, pkt *startup.Packet) ([]startup.Param, error) {
	var out []startup.Param
	for _, p := range pkt.Params {
		switch {
		case p.Key == "user" || p.Key == "database" || strings.HasPrefix(p.Key, "_pq_."):
		case p.Key == "replication": // read at login (replication.go)
		case p.Key == "options" && s.kind.replication():
			// Sent to the replication client's own server as it came (CREATE SUBSCRIPTION
			// sets extra_float_digits there), as in PgBouncer.
			out = append(out, p)
		case p.Key == "options":
			opts, err := startup.ParseOptions(p.Value)
			if err != nil {
				if ignored(cfg, "options") {
					continue
				}
				return nil, pgerr.Fatal(pgerr.FeatureNotSupported, "%v", err)
			}
			for _, o := range opts {
				if !ignored(cfg, o.Key) {
					out = append(out, o)
				}
			}
		case ignored(cfg, p.Key):
		default:
			out = append(out, p)
		}
	}
	return out, nil
}

func ignored(cfg *config.Config, key string) bool {
	for _, x := range cfg.IgnoreStartupParameters {
		if strings.EqualFold(x, key) {
			return true
		}
	}
	return false
}

// initParams sets what the client is told at login: the server's parameters with the
// client's own values for reported ones (start has them as the server spells them:
// spellStart). Every startup parameter becomes a startup setting (settings.go), applied
// on each server the client gets and what RESET returns to, unless it is a reported one
// whose value the pool's servers already have.
func (s *Session) initParams(cfg *config.Config, server pool.Params, start []startup.Param) {
	// On the stack: a client that sent the values another client of the pool sent (an
	// application's clients send the same ones) shares that client's copy, and its login
	// allocates neither these nor their key (sharedParams, sharedStart clone what they
	// keep).
	var ownBuf, startBuf [8]pool.Param
	own, startVals := pool.Params(ownBuf[:0]), pool.Params(startBuf[:0])
	for _, p := range start {
		if p.Key == "pgmux.pool_mode" {
			if strings.EqualFold(p.Value, "session") {
				s.kind = kindSession
			}
			continue
		}
		if name, ok := trackedName(cfg, p.Key); ok {
			base, known := server.Get(name)
			if known && base == p.Value {
				continue
			}
			if known || !reportedOnly[name] {
				own = withParam(own, name, p.Value)
			}
		}
		startVals = withParam(startVals, strings.ToLower(p.Key), p.Value)
	}
	s.params = s.sharedParams(server, own)
	if len(startVals) > 0 {
		s.set.Store(s.sharedStart(startVals))
	}
}

// withParam is ps with name set to value, as params.Params.Set (which, through its
// pointer, would move initParams' stack arrays to the heap).
func withParam(ps pool.Params, name, value string) pool.Params {
	for i := range ps {
		if ps[i].Name == name {
			ps[i].Value = value
			return ps
		}
	}
	return append(ps, pool.Param{Name: name, Value: value})
}

// keptParams is a copy of ps for a value that outlives the caller's stack array (nil
// for none), clipped: a Set on it must not write into another's array.
func keptParams(ps pool.Params) pool.Params {
	if len(ps) == 0 {
		return nil
	}
	return slices.Clone(ps)
}

// sharedParams returns the reported parameters base (the server's) with the client's own
// values own, as the pool's other clients that sent the same values already hold them
// (read-only: setParam makes a client's own before it changes one), else new. own may
// be the caller's stack array: what is kept is a copy.
func (s *Session) sharedParams(base, own pool.Params) *sessionParams {
	if s.entry == nil {
		return &sessionParams{base: base, own: keptParams(own)}
	}
	var key [256]byte
	return s.entry.sharedParams(packStart(key[:0], own), base, own)
}

// sharedStart returns read-only settings holding only the startup values start: one
// value shared by the pool's clients that sent the same ones (an application's clients
// do), so that a client that has logged in and sent nothing holds none of its own. The
// session takes a copy of its own before it handles a message (ownSettings).
func (s *Session) sharedStart(start pool.Params) *settings {
	if s.entry == nil {
		return &settings{Settings: link.Settings{Start: slices.Clone(start)}}
	}
	var key [256]byte
	return s.entry.sharedStart(packStart(key[:0], start), start)
}

// packStart appends to b the key of a set of startup values: names and values,
// NUL-terminated.
func packStart(b []byte, start pool.Params) []byte {
	for _, p := range start {
		b = append(append(b, p.Name...), 0)
		b = append(append(b, p.Value...), 0)
	}
	return b
}

// ownSettings replaces the shared startup settings of initParams with the client's own
// copy; the session goroutine calls it before it handles the client's messages, the first
// that may change its settings.
func (s *Session) ownSettings() {
	if st := s.set.Load(); st != nil && st.shared {
		s.set.Store(&settings{Settings: link.Settings{Start: st.Start}, from: st})
	}
}

// unshareSettings gives back a parking client's own copy of its settings when nothing in
// it is the client's (pristine): it points to the shared startup settings it was made
// from again, and makes a copy anew when it next sends a request (ownSettings). A client
// an application keeps idle between its requests then holds no settings of its own (256
// bytes). Called as the client parks with no server linked and nothing in flight (shed).
func (s *Session) unshareSettings() {
	if st := s.set.Load(); st != nil && st.from != nil && st.pristine() {
		s.set.Store(st.from)
	}
}

// sessionParams are a client's reported parameters: the pool's login parameters, shared
// read-only by every client of the pool, and the few values this client changed. A
// client points to them (Session.params, nil until its login sets them): the clients of
// a pool that reported the same values point to one shared value (poolEntry.sharedParams),
// and a client that changes one gets its own first (setParam), so an idle client costs
// the pointer. Until the login answer the session goroutine sets them alone; after it,
// they change under Session.mu (the server's reader, on ParameterStatus), and readers
// elsewhere take mu.
type sessionParams struct {
	base   pool.Params
	own    pool.Params
	shared bool // other clients point to it too: read only
}

// Get returns the client's value of name.
func (p *sessionParams) Get(name string) (string, bool) {
	if p == nil {
		return "", false
	}
	if v, ok := p.own.Get(name); ok {
		return v, true
	}
	return p.base.Get(name)
}

// setParam records the client's value of name and reports whether it changed.
func (s *Session) setParam(name, value string) bool {
	p := s.params
	if v, ok := p.Get(name); ok && v == value {
		return false
	}
	if p == nil || p.shared {
		mine := &sessionParams{}
		if p != nil {
			mine.base, mine.own = p.base, p.own
		}
		s.params, p = mine, mine
	}
	p.own = p.own.Clone() // the array may be shared too: never changed in place
	p.own.Set(name, value)
	return true
}

// each calls f for every parameter with the client's value, in order: the base ones
// (the server's, at login) with the client's own values over them, then the client's
// others.
func (p *sessionParams) each(f func(name, value string)) {
	if p == nil {
		return
	}
	for _, kv := range p.base {
		v := kv.Value
		if own, ok := p.own.Get(kv.Name); ok {
			v = own
		}
		f(kv.Name, v)
	}
	for _, kv := range p.own {
		if _, ok := p.base.Get(kv.Name); !ok {
			f(kv.Name, kv.Value)
		}
	}
}

// reportChanged tells the client the reported parameters whose values changed while
// ParameterStatus was held back (onParameterStatus). s.mu is held; the caller is the
// server's reader and holds the client's write lock.
func (s *Session) reportChanged(c *pool.Conn) {
	var b []byte
	for _, p := range c.Params {
		if v, ok := s.params.Get(p.Name); ok && v != p.Value {
			s.setParam(p.Name, p.Value)
			b = wire.ParameterStatus(b, p.Name, p.Value)
		}
	}
	if len(b) == 0 || s.closed.Load() {
		return
	}
	err := s.wr.Write(b)
	if err == nil {
		err = s.wr.Flush()
	}
	if err != nil {
		s.clientWriteFailed()
	}
}

// onParameterStatus records a parameter change on the server and on the client, and
// relays it unless it is the echo of a hidden query that the client already believes. A
// change made while answering the client's own request marks the setting touched, so its
// value is read back (settings.go) even when pgmux did not see it named.
func (s *Session) onParameterStatus(c *pool.Conn, n int) error {
	m, err := c.Rd.Message(n)
	if err != nil {
		return err
	}
	k, v, err := wire.ParseParameterStatus(wire.Body(m))
	if err != nil {
		s.log().Warn("malformed ParameterStatus from server", zap.Error(err))
		return nil
	}
	name, value := string(k), string(v)
	c.Params.Set(name, value)
	c.NoteParameter(name, value)
	s.mu.Lock()
	if head, ok := s.q.peek(); ok && !head.Hide {
		s.settingsState().MarkReported(name)
	}
	if st := s.set.Load(); st != nil && st.reapplying > 0 {
		// A reset is followed by pgmux setting the startup value again: the client hears
		// of the outcome once that is done (reportChanged), not of the default between.
		s.mu.Unlock()
		return nil
	}
	changed := s.setParam(name, value)
	s.mu.Unlock()
	if !changed || s.closed.Load() {
		return nil
	}
	if err := s.wr.Write(m); err != nil {
		s.clientWriteFailed()
	}
	return nil
}
