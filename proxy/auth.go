package proxy

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/protocol/auth"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/wire"
)

// mockSecret keys the fake SCRAM exchanges offered for unknown users.
var mockSecret = sync.OnceValue(func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
})

// looksUpUser reports whether auth_query is asked about a user missing from auth_file
// under auth_type a: to check its password, or (trust, cert) that it exists at all. Only
// any, which logs every client in as the database's user, asks nothing.
func looksUpUser(a config.AuthType) bool { return a != config.AuthAny }

// userListed reports whether a user logging in without a password (trust, cert) exists
// where pgmux finds users. PgBouncer requires it in auth_file, or found by auth_query
// (known), and ends the login otherwise. With neither auth_file nor auth_user (pgmux's
// URL and environment configuration, a Config built in code) there is nowhere to look,
// and any user is admitted.
func userListed(cfg *config.Config, known bool) bool {
	return known || (cfg.AuthFile == "" && cfg.AuthUser == "")
}

// authTrust admits a client without a password if its user is listed (userListed), else
// ends the login with PgBouncer's "\"trust\" authentication failed"; pgmux let any user
// name in.
func authTrust(cfg *config.Config, user string, known bool) error {
	if userListed(cfg, known) {
		return nil
	}
	return pgerr.Fatal(pgerr.InvalidAuthorization, "\"trust\" authentication failed for user %q", user)
}

func isSCRAMSecret(pw string) bool { return auth.IsSCRAMVerifier(pw) }

func passwordFailed(user string) *pgerr.Error {
	return pgerr.Fatal(pgerr.InvalidPassword, "password authentication failed for user %q", user)
}

// authenticate runs the configured client authentication against auth_file.
func (s *Session) authenticate(cfg *config.Config, user string) error {
	s.srv.mu.Lock()
	cred, known := s.srv.creds[user]
	s.srv.mu.Unlock()
	if !known && cfg.AuthUser != "" && user != cfg.AuthUser && looksUpUser(cfg.AuthType) {
		if db, ok := cfg.DatabaseFor(s.dbName); ok && !isAdminDB(s.dbName) {
			// The offloaded closure's own variables: had it set cred and known, they
			// would live on the heap for every login, this branch taken or not.
			var (
				qcred  config.Credential
				qknown bool
				err    error
			)
			deadline := s.loginDeadline(cfg)
			s.offload(func() { qcred, qknown, err = s.srv.authQueryCred(cfg, db, user, deadline) }) // a server round trip
			cred, known = qcred, qknown
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return err // client_login_timeout (loginTimedOut)
			}
			if err != nil {
				s.log().Warn("auth_query failed", zap.String("user", user), zap.Error(err))
				return pgerr.Fatal(pgerr.InvalidAuthorization, "could not look up user %q: auth_query failed", user)
			}
			if err := s.checkCredentials(cfg, user, cred, known); err != nil {
				return err
			}
			if known {
				s.srv.authQueryLoggedIn(cfg, db)
			}
			return nil
		}
	}
	return s.checkCredentials(cfg, user, cred, known)
}

// checkCredentials authenticates the client as auth_type says, against cred (known:
// there is one).
func (s *Session) checkCredentials(cfg *config.Config, user string, cred config.Credential, known bool) error {
	switch cfg.AuthType {
	case config.AuthTrust:
		return authTrust(cfg, user, known)
	case config.AuthAny:
		return nil
	case config.AuthPlain:
		return s.authCleartext(user, cred, known)
	case config.AuthSCRAM:
		return s.authSCRAM(user, cred, known)
	case config.AuthHBA:
		return s.authenticateHBA(cfg, user, cred, known)
	case config.AuthCert:
		return s.authCert(cfg, user, known)
	case config.AuthMD5:
		if _, ok := s.srv.scramSecret(cred.Password); known && ok {
			return s.authSCRAM(user, cred, known)
		}
		return s.authMD5(user, cred, known)
	}
	return pgerr.Fatal(pgerr.InvalidAuthorization, "auth_type %s is not supported", cfg.AuthType)
}

// authMsg is an Authentication message in a buffer of its size: one allocation, where
// appending to nil grew it two or three times.
func authMsg(code int32, payload []byte) []byte {
	return wire.Auth(make([]byte, 0, 1+4+4+len(payload)), code, payload)
}

// readPassword sends an authentication request and reads the client's answer body, a
// copy of its own.
func (s *Session) readPassword(code int32, payload []byte) ([]byte, error) {
	body, err := s.readAuth(authMsg(code, payload))
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), body...), nil
}

// readAuth sends msg, an Authentication message, and reads the client's answer: its
// body, a view of the session's reader, valid until the session's next read.
func (s *Session) readAuth(msg []byte) ([]byte, error) {
	if err := s.loginWrite(msg); err != nil {
		return nil, err
	}
	typ, n, err := s.rd.Next()
	if err != nil {
		return nil, err
	}
	if typ != 'p' {
		return nil, pgerr.Fatal(pgerr.ProtocolViolation, "expected password response, got message type %q", typ)
	}
	if n > 8192 {
		return nil, pgerr.Fatal(pgerr.ProtocolViolation, "password packet too large")
	}
	m, err := s.rd.Message(n)
	if err != nil {
		return nil, err
	}
	return wire.Body(m), nil
}

func (s *Session) authCleartext(user string, cred config.Credential, known bool) error {
	body, err := s.readPassword(wire.AuthCleartext, nil)
	if err != nil {
		return err
	}
	pw, _, err := wire.CString(body)
	if err != nil {
		return pgerr.Fatal(pgerr.ProtocolViolation, "invalid password packet")
	}
	ok := false
	switch {
	case known && isSCRAMSecret(cred.Password):
		s.offload(func() { ok = checkPlain(user, cred.Password, string(pw)) }) // a key derivation
	case known:
		ok = checkPlain(user, cred.Password, string(pw))
	}
	if !ok {
		return passwordFailed(user)
	}
	if _, ok := s.srv.scramSecret(cred.Password); ok {
		s.rememberSCRAMFromPassword(user, cred.Password, string(pw))
	}
	return nil
}

// checkPlain compares a cleartext password with whatever auth_file stores. An empty
// password never matches, given or stored, as PostgreSQL and PgBouncer refuse it.
func checkPlain(user, stored, given string) bool {
	switch {
	case given == "" || stored == "":
		return false
	case isSCRAMSecret(stored):
		v, err := auth.ParseVerifier(stored)
		if err != nil {
			return false
		}
		got, err := auth.DeriveVerifier(given, v.Salt, v.Iterations)
		return err == nil && constEq(got.StoredKey, v.StoredKey)
	case auth.IsMD5Hash(stored):
		return constEq([]byte(auth.MD5Password(user, given)), []byte(stored))
	default:
		return constEq([]byte(given), []byte(stored))
	}
}

func (s *Session) authMD5(user string, cred config.Credential, known bool) error {
	var salt [4]byte
	_, _ = rand.Read(salt[:])
	body, err := s.readPassword(wire.AuthMD5, salt[:])
	if err != nil {
		return err
	}
	resp, _, err := wire.CString(body)
	if err != nil {
		return pgerr.Fatal(pgerr.ProtocolViolation, "invalid password packet")
	}
	if !known || !auth.VerifyMD5(cred.Password, user, salt, string(resp)) {
		return passwordFailed(user)
	}
	return nil
}

// scramLogin is what a SCRAM exchange with a client needs besides the session: the
// exchange and the buffer pgmux's messages to the client are built in. A login takes one
// from scramLogins and gives it back at its end, so that the exchange allocates nothing
// for messages of the usual sizes (issue 14: the exchange, its messages and copies of the
// client's were most of the 31 allocations of a login's authentication;
// TestSCRAMLoginAllocatesNothing).
type scramLogin struct {
	ex  auth.ServerSCRAM
	out [160]byte // the largest message, SASLContinue with the server-first-message, is about 100 bytes
}

var scramLogins = sync.Pool{New: func() any { return new(scramLogin) }}

// msg returns the Authentication message with code and payload, in l's buffer: valid
// until the next call.
func (l *scramLogin) msg(code int32, payload []byte) []byte {
	return wire.Auth(l.out[:0], code, payload)
}

// done gives l back to scramLogins, without the exchange's keys.
func (l *scramLogin) done() {
	l.ex.Reset(auth.Verifier{}, nil)
	scramLogins.Put(l)
}

func (s *Session) authSCRAM(user string, cred config.Credential, known bool) error {
	l := scramLogins.Get().(*scramLogin)
	defer l.done()
	ex := &l.ex
	v, secret := s.srv.scramSecret(cred.Password)
	switch {
	case known && secret:
		ex.Reset(v, s.channelBinding())
	case known && cred.Password != "" && !auth.IsMD5Hash(cred.Password):
		// pv, not v, for the offloaded closure: v would live on the heap for every login.
		pv, cached := s.srv.cachedVerifier(user, cred.Password)
		if !cached {
			s.offload(func() { pv = s.srv.plainVerifier(user, cred.Password) }) // a key derivation
		}
		ex.Reset(pv, s.channelBinding())
	default:
		ex.ResetMock(user, mockSecret(), s.channelBinding())
	}
	var mechs [48]byte
	payload := mechs[:0]
	for _, m := range ex.Mechanisms() {
		payload = wire.AppendString(payload, m)
	}
	payload = append(payload, 0)
	body, err := s.readAuth(l.msg(wire.AuthSASL, payload))
	if err != nil {
		return err
	}
	first, err := s.startSCRAM(l, user, body)
	if err != nil {
		return err
	}
	final, err := s.readAuth(l.msg(wire.AuthSASLContinue, first))
	if err != nil {
		return err
	}
	last, err := ex.Finish(final)
	if err != nil {
		return scramFailed(user, err)
	}
	// Held for the login's next write (its answer, or the FATAL that ends it): one send
	// for both, where the client waits for the answer anyway.
	s.loginHold(l.msg(wire.AuthSASLFinal, last))
	if secret {
		s.srv.keepSCRAMKeys(user, ex, v.ServerKey)
	}
	return nil
}

// keepSCRAMKeys keeps the ClientKey a client proved in ex, with serverKey, for server
// logins as user (SCRAM pass-through). A client logging in again proves the key kept
// already: the entry is left as it is then, where a copy of the key replaced it at every
// login.
func (srv *Server) keepSCRAMKeys(user string, ex *auth.ServerSCRAM, serverKey []byte) {
	var buf [32]byte
	key := ex.AppendClientKey(buf[:0])
	srv.mu.Lock()
	defer srv.mu.Unlock()
	k, ok := srv.scramKeys[user]
	if ok && k.password == "" && subtle.ConstantTimeCompare(k.clientKey, key) == 1 &&
		subtle.ConstantTimeCompare(k.serverKey, serverKey) == 1 {
		return
	}
	srv.scramKeys[user] = scramKeys{clientKey: slices.Clone(key), serverKey: serverKey}
}

// startSCRAM begins l's exchange with the client's SASLInitialResponse (body) and
// returns the server-first-message. One without an initial response (length -1) is
// answered as PostgreSQL answers it (auth-sasl.c): an empty AuthenticationSASLContinue,
// and the client-first-message comes in the SASLResponse that follows.
func (s *Session) startSCRAM(l *scramLogin, user string, body []byte) ([]byte, error) {
	mech, rest, err := wire.CString(body)
	if err != nil {
		return nil, pgerr.Fatal(pgerr.ProtocolViolation, "invalid SASLInitialResponse")
	}
	n, data, err := wire.Int32(rest)
	switch {
	case err == nil && n == -1 && len(data) == 0:
		challenge, err := l.ex.StartEmpty(string(mech))
		if err != nil {
			return nil, scramFailed(user, err)
		}
		if data, err = s.readAuth(l.msg(wire.AuthSASLContinue, challenge)); err != nil {
			return nil, err
		}
		first, err := l.ex.ClientFirst(data)
		if err != nil {
			return nil, scramFailed(user, err)
		}
		return first, nil
	case err != nil || int(n) != len(data):
		return nil, pgerr.Fatal(pgerr.ProtocolViolation, "invalid SASLInitialResponse length")
	}
	first, err := l.ex.Start(string(mech), data)
	if err != nil {
		return nil, scramFailed(user, err)
	}
	return first, nil
}

// scramFailed is the FATAL that ends a failed SCRAM exchange, with the SQLSTATE
// PostgreSQL gives each kind of failure (auth-scram.c): a wrong proof is a wrong
// password (28P01); a message that does not parse or that the exchange did not expect
// (a mechanism not offered, a nonce not ours) is a protocol violation (08P01), not a
// failed authorization; what PostgreSQL does not support either is 0A000; a channel
// binding that fails stays 28000.
func scramFailed(user string, err error) error {
	switch {
	case errors.Is(err, auth.ErrPasswordMismatch):
		return passwordFailed(user)
	case errors.Is(err, auth.ErrProtocolViolation):
		return pgerr.Fatal(pgerr.ProtocolViolation, "%s", strings.TrimPrefix(err.Error(), "auth: "))
	case errors.Is(err, auth.ErrNotSupported):
		return pgerr.Fatal(pgerr.FeatureNotSupported, "%s", strings.TrimPrefix(err.Error(), "auth: "))
	}
	return pgerr.Fatal(pgerr.InvalidAuthorization, "SCRAM authentication failed for user %q: %v", user, err)
}

// rememberSCRAMFromPassword keeps the cleartext password a client proved against a SCRAM
// verifier, so that server logins for that user can use it.
func (s *Session) rememberSCRAMFromPassword(user, stored, pw string) {
	s.srv.mu.Lock()
	s.srv.scramKeys[user] = scramKeys{password: pw}
	s.srv.mu.Unlock()
}

// cachedVerifier returns plainVerifier's verifier for user's password if it has one.
func (srv *Server) cachedVerifier(user, pw string) (auth.Verifier, bool) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if c, ok := srv.verifiers[user]; ok && c.password == pw {
		return c.v, true
	}
	return auth.Verifier{}, false
}

// plainVerifier returns a cached SCRAM verifier for a plain auth_file password.
func (srv *Server) plainVerifier(user, pw string) auth.Verifier {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.verifiers == nil {
		srv.verifiers = make(map[string]cachedVerifier)
	}
	if c, ok := srv.verifiers[user]; ok && c.password == pw {
		return c.v
	}
	v := auth.NewVerifier(pw, auth.NewSalt(), auth.DefaultIterations)
	srv.verifiers[user] = cachedVerifier{password: pw, v: v}
	return v
}

// scramSecret returns pw parsed as a SCRAM verifier, and whether it is one, parsing each
// secret once: a login with a SCRAM secret needs it two or three times, and parsing
// allocates its three keys. The cache is emptied at each reload; secrets past
// maxParsedSecrets (auth_query results, say) are parsed every time.
func (srv *Server) scramSecret(pw string) (auth.Verifier, bool) {
	if !strings.HasPrefix(pw, auth.MechanismSCRAM+"$") {
		return auth.Verifier{}, false
	}
	srv.mu.Lock()
	v, ok := srv.parsedSecrets[pw]
	srv.mu.Unlock()
	if ok {
		return v, true
	}
	v, err := auth.ParseVerifier(pw)
	if err != nil {
		return auth.Verifier{}, false
	}
	srv.mu.Lock()
	if srv.parsedSecrets == nil {
		srv.parsedSecrets = make(map[string]auth.Verifier)
	}
	if len(srv.parsedSecrets) < maxParsedSecrets {
		srv.parsedSecrets[pw] = v
	}
	srv.mu.Unlock()
	return v, true
}

// maxParsedSecrets bounds scramSecret's cache.
const maxParsedSecrets = 10000

type cachedVerifier struct {
	password string
	v        auth.Verifier
}

func constEq(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	var d byte
	for i := range a {
		d |= a[i] ^ b[i]
	}
	return d == 0
}
