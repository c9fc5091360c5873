package proxy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/wire"
)

// auth_query: a user missing from auth_file is looked up in the database. pgmux logs in
// as auth_user (its password comes from auth_file), runs auth_query with the user name as
// $1, and takes the second column as the user's secret: a SCRAM verifier, an md5 hash or
// a plain password. The client is authenticated against it, and server logins for the
// user reuse it (SCRAM pass-through with the keys the client's proof reveals).

// authQueryTTL is how long a looked-up secret is trusted before it is fetched again.
const authQueryTTL = 15 * time.Second

// maxAuthCache bounds authCache. The cache keeps only the roles auth_query found: a name
// it did not find is looked up again at its next login, as PgBouncer does (it keeps the
// users its auth_query found, none it did not). Anyone may try any name before
// authenticating, and every name tried stayed in the cache until a reload; the roles of
// the database are bounded, and past maxAuthCache even those are not kept.
const maxAuthCache = 10000

type authQueryResult struct {
	secret string
	found  bool
	at     time.Time
}

// authQueryCred returns the credential auth_query gives user, fetching it when the cache
// has none fresh. known is false when the role does not exist, cannot log in, has no
// password or an expired one. A fetch is waited for until deadline (the login's; zero:
// none), past which the error is os.ErrDeadlineExceeded: it waits for a server of
// auth_user's pool, whose dial does not stop for a waiter, and for the query's answer,
// and a login waiting for them could hang past client_login_timeout. The fetch goes on
// without the login, and what it finds is kept for the next.
func (srv *Server) authQueryCred(cfg *config.Config, db *config.Database, user string, deadline time.Time) (config.Credential, bool, error) {
	srv.mu.Lock()
	r, ok := srv.authCache[user]
	srv.mu.Unlock()
	if ok && time.Since(r.at) < authQueryTTL {
		return config.Credential{Password: r.secret}, r.found, nil
	}
	if deadline.IsZero() {
		return srv.fetchAuthQuery(cfg, db, user)
	}
	type result struct {
		cred  config.Credential
		found bool
		err   error
	}
	res, done := untilDeadline(deadline, func() result {
		cred, found, err := srv.fetchAuthQuery(cfg, db, user)
		return result{cred, found, err}
	})
	if !done {
		return config.Credential{}, false, fmt.Errorf("auth_query: %w", os.ErrDeadlineExceeded)
	}
	return res.cred, res.found, res.err
}

// fetchAuthQuery runs auth_query for user and keeps what it finds.
func (srv *Server) fetchAuthQuery(cfg *config.Config, db *config.Database, user string) (config.Credential, bool, error) {
	secret, found, err := srv.runAuthQuery(cfg, db, user)
	if err != nil {
		return config.Credential{}, false, err
	}
	srv.mu.Lock()
	if _, had := srv.authCache[user]; !found {
		delete(srv.authCache, user) // gone since, or never there
	} else if had || len(srv.authCache) < maxAuthCache {
		if srv.authCache == nil {
			srv.authCache = make(map[string]authQueryResult)
		}
		srv.authCache[user] = authQueryResult{secret: secret, found: true, at: time.Now()}
	}
	srv.mu.Unlock()
	return config.Credential{Password: secret}, found, nil
}

// authQuerySecret returns a cached auth_query secret for server logins; s.mu is held.
func (srv *Server) authQuerySecret(user string) (string, bool) {
	r, ok := srv.authCache[user]
	return r.secret, ok && r.found
}

// runAuthQuery runs auth_query on a server connection of auth_user's pool for db.
func (srv *Server) runAuthQuery(cfg *config.Config, db *config.Database, user string) (string, bool, error) {
	p, done, err := srv.authQueryPool(cfg, db)
	if err != nil {
		return "", false, err
	}
	defer done()
	timeout := cfg.QueryWaitTimeout
	if timeout <= 0 || timeout > 30*time.Second {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	l := &authQueryLessee{done: make(chan struct{})}
	c, err := p.Acquire(ctx, l)
	if err != nil {
		return "", false, fmt.Errorf("auth_query: connect as auth_user %q: %w", cfg.AuthUser, err)
	}
	if err = c.Wr.Write(authQueryMessages(cfg.AuthQuery, user)); err == nil {
		err = c.Wr.Flush()
	}
	if err != nil {
		c.Discard(err)
		return "", false, fmt.Errorf("auth_query: %w", err)
	}
	select {
	case <-l.done:
	case <-ctx.Done():
		c.Discard(ctx.Err())
		return "", false, fmt.Errorf("auth_query: no answer: %w", ctx.Err())
	}
	if l.err != nil {
		return "", false, fmt.Errorf("auth_query: %w", l.err)
	}
	if !l.found || !l.hasSecret {
		return "", false, nil
	}
	return l.secret, true, nil
}

// authQueryPool returns the pool auth_query runs on for db, and what to call once done
// with it: auth_user's pool for db. The client asking has not authenticated yet, and for
// a database only the "*" entry names, making that pool (with its maintenance goroutine,
// its limits and statistics, kept until a reload) for each database name a client asked
// for let anyone grow pgmux without bound, one name at a time. Such a database uses
// auth_user's pool when a client's login made it (authQueryLoggedIn), else a pool of one
// connection made for this query and closed after it.
func (srv *Server) authQueryPool(cfg *config.Config, db *config.Database) (*pool.Pool, func(), error) {
	if _, named := cfg.Databases[db.Name]; !named {
		if e := srv.pools.lookup(db.Name, cfg.AuthUser); e != nil {
			return e.pool, func() {}, nil
		}
		p, err := srv.pools.transient(cfg, db, cfg.AuthUser)
		if err != nil {
			return nil, nil, err
		}
		return p, p.Close, nil
	}
	e, err := srv.pools.get(cfg, db, cfg.AuthUser)
	if err != nil {
		return nil, nil, err
	}
	return e.pool, func() {}, nil
}

// authQueryLoggedIn makes auth_user's pool for db once a client has logged in there
// with a secret auth_query gave, when only the "*" entry names db: the next lookups
// there use it, rather than a connection each (authQueryPool).
func (srv *Server) authQueryLoggedIn(cfg *config.Config, db *config.Database) {
	if _, named := cfg.Databases[db.Name]; !named {
		_, _ = srv.pools.get(cfg, db, cfg.AuthUser)
	}
}

// authQueryMessages is Parse, Bind (user as $1), Execute and Sync.
func authQueryMessages(query, user string) []byte {
	b, st := wire.Begin(nil, 'P')
	b = wire.AppendString(b, "")
	b = wire.AppendString(b, query)
	b = wire.AppendInt16(b, 0)
	b = wire.Finish(b, st)
	b, st = wire.Begin(b, 'B')
	b = wire.AppendString(b, "")
	b = wire.AppendString(b, "")
	b = wire.AppendInt16(b, 0)
	b = wire.AppendInt16(b, 1)
	b = wire.AppendInt32(b, int32(len(user)))
	b = append(b, user...)
	b = wire.AppendInt16(b, 0)
	b = wire.Finish(b, st)
	b, st = wire.Begin(b, 'E')
	b = wire.AppendString(b, "")
	b = wire.AppendInt32(b, 0)
	b = wire.Finish(b, st)
	b, st = wire.Begin(b, 'S')
	return wire.Finish(b, st)
}

// authQueryLessee reads auth_query's answer on the connection's reader goroutine and
// gives the connection back at ReadyForQuery. The reader writes found, hasSecret, secret
// and err, then closes done; the login goroutine reads them only after done is closed.
type authQueryLessee struct {
	done      chan struct{}
	found     bool
	hasSecret bool
	secret    string
	err       error
}

func (l *authQueryLessee) Pump(c *pool.Conn) error {
	return pumpAnswers(c, l, 1, "auth_query", func(typ byte, m []byte) {
		switch typ {
		case 'D':
			if !l.found {
				l.readRow(wire.Body(m))
			}
		case 'E':
			pe, _ := pgerr.Parse(wire.Body(m))
			if l.err == nil {
				l.err = pe
			}
		}
	}, l.finish)
}

// pumpAnswers reads the answers to queries of pgmux's own on c's reader goroutine for
// its lessee l, giving each message (ReadyForQuery too) to on, up to the readies-th
// ReadyForQuery: c then goes back to the pool, or is discarded if the queries (what)
// left a transaction open. done is called once: with nil then, or with the read error
// that broke c.
func pumpAnswers(c *pool.Conn, l pool.Lessee, readies int, what string, on func(typ byte, m []byte), done func(error)) error {
	for {
		if c.Lessee() != l {
			return nil
		}
		typ, n, err := c.Rd.Next()
		var m []byte
		if err == nil {
			m, err = c.Rd.Message(n)
		}
		if err != nil {
			done(err)
			return err
		}
		on(typ, m)
		if typ != 'Z' {
			continue
		}
		if readies--; readies > 0 {
			continue
		}
		if len(m) > 5 && m[5] == 'I' {
			c.Release(false)
		} else {
			c.Discard(errors.New(what + " left a transaction open"))
		}
		done(nil)
		return nil
	}
}

func (l *authQueryLessee) finish(err error) {
	if err != nil && l.err == nil {
		l.err = err
	}
	close(l.done)
}

// readRow takes the second column of the first row as the secret.
func (l *authQueryLessee) readRow(body []byte) {
	cols, rest, err := wire.Int16(body)
	if err != nil || cols < 2 {
		l.err = errors.New("auth_query must return two columns: user name and secret")
		return
	}
	l.found = true
	for i := 0; i < 2; i++ {
		var n int32
		if n, rest, err = wire.Int32(rest); err != nil || int(n) > len(rest) {
			l.err = errors.New("malformed auth_query row")
			return
		}
		if i == 1 && n >= 0 {
			l.secret, l.hasSecret = string(rest[:n]), n > 0
		}
		if n > 0 {
			rest = rest[n:]
		}
	}
}
