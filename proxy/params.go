package proxy

import (
	"strings"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/startup"
	"github.com/pgmux/pgmux/protocol/wire"
)

// trackedParams are the parameters PostgreSQL reports that follow a client from server to
// server, by lower-case name to the name the server reports.
var trackedParams = map[string]string{
	"client_encoding":             "client_encoding",
	"datestyle":                   "DateStyle",
	"timezone":                    "TimeZone",
	"intervalstyle":               "IntervalStyle",
	"standard_conforming_strings": "standard_conforming_strings",
	"application_name":            "application_name",
}

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
		case p.Key == "replication":
			return nil, pgerr.Fatal(pgerr.FeatureNotSupported, "replication connections are not supported by pgmux")
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
// client's own values for tracked ones; other startup parameters become extras, applied
// with set_config on each server the client gets.
func (s *Session) initParams(cfg *config.Config, server pool.Params, start []startup.Param) {
	s.params = sessionParams{base: server}
	for _, p := range start {
		if p.Key == "pgmux.pool_mode" {
			s.forceSession = strings.EqualFold(p.Value, "session")
			continue
		}
		if name, ok := trackedName(cfg, p.Key); ok {
			s.params.Set(name, normalizeParam(name, p.Value))
			continue
		}
		s.extras.Set(strings.ToLower(p.Key), p.Value)
	}
}

// sessionParams are a client's reported parameters: the pool's login parameters, shared
// read-only by every client of the pool, and the few values this client changed.
type sessionParams struct {
	base pool.Params
	own  pool.Params
}

// Get returns the client's value of name.
func (p *sessionParams) Get(name string) (string, bool) {
	if v, ok := p.own.Get(name); ok {
		return v, true
	}
	return p.base.Get(name)
}

// Set records the client's value of name and reports whether it changed.
func (p *sessionParams) Set(name, value string) bool {
	if v, ok := p.Get(name); ok && v == value {
		return false
	}
	p.own.Set(name, value)
	return true
}

// All returns every parameter with the client's values.
func (p *sessionParams) All() pool.Params {
	out := p.base.Clone()
	for _, kv := range p.own {
		out.Set(kv.Name, kv.Value)
	}
	return out
}

// normalizeParam spells a value the way the server would report it, where that is known.
func normalizeParam(name, value string) string {
	if name == "client_encoding" {
		v := strings.ToUpper(strings.ReplaceAll(value, "-", ""))
		switch v {
		case "UTF8", "UNICODE":
			return "UTF8"
		case "LATIN1", "ISO88591":
			return "LATIN1"
		}
		return v
	}
	return value
}

// syncParams queues hidden queries that give server c the client's parameters. s.mu is
// held; c is freshly linked, so nothing else writes to it.
func (s *Session) syncParams(c *pool.Conn) {
	var b []byte
	n := 0
	for _, name := range s.srv.tracked() {
		want, ok := s.params.Get(name)
		if !ok {
			continue
		}
		if have, _ := c.Params.Get(name); have != want {
			b = wire.Query(b, setConfigSQL(name, want))
			c.Params.Set(name, want)
			n++
		}
	}
	x := s.stateOf(c)
	for _, p := range s.extras {
		if have, ok := x.set.Get(p.Name); !ok || have != p.Value {
			b = wire.Query(b, setConfigSQL(p.Name, p.Value))
			n++
		}
	}
	for _, p := range x.set {
		if _, ok := s.extras.Get(p.Name); !ok {
			b = wire.Query(b, "RESET "+quoteIdent(p.Name))
			n++
		}
	}
	if n == 0 {
		return
	}
	x.set = s.extras.Clone()
	for i := 0; i < n; i++ {
		s.q.push(expect{kind: 'Q', hide: true})
	}
	_ = c.Wr.Write(b) // a failed write surfaces when the client's message is flushed
}

// trackedList lists the canonical names of the tracked parameters for a configuration.
func trackedList(cfg *config.Config) []string {
	names := make([]string, 0, len(trackedParams)+len(cfg.TrackExtraParameters))
	for _, v := range trackedParams {
		names = append(names, v)
	}
	return append(names, cfg.TrackExtraParameters...)
}

func setConfigSQL(name, value string) string {
	return "SELECT pg_catalog.set_config(" + quoteLiteral(name) + ", " + quoteLiteral(value) + ", false)"
}

// quoteLiteral quotes s as an E” literal, safe whatever standard_conforming_strings is.
func quoteLiteral(s string) string {
	return "E'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// onParameterStatus records a parameter change on the server, and for tracked parameters
// on the client too, and relays it unless it is the echo of a hidden query that the
// client already believes.
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
	changed := s.params.Set(name, value)
	s.mu.Unlock()
	if !changed || s.closed.Load() {
		return nil
	}
	if err := s.wr.Write(m); err != nil {
		s.clientWriteFailed()
	}
	return nil
}
