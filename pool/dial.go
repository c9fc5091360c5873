package pool

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pgmux/pgmux/protocol/auth"
	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/wire"
)

// Target says where and as whom to log in.
type Target struct {
	Host     string // name, IPv4/IPv6 address, or a unix socket directory ("/...")
	Port     int
	Database string
	User     string
	// Password is plain text or an "md5..." hash; empty when SCRAM keys are used.
	Password string
	// SCRAMClientKey and SCRAMServerKey allow SCRAM pass-through without the password.
	SCRAMClientKey, SCRAMServerKey []byte
	// Params are sent in the StartupMessage (client_encoding, DateStyle, ...).
	Params Params
	// ConnectQuery runs once after login.
	ConnectQuery string
	// TLS, when set, is used after an accepted SSLRequest. TLSRequired refuses a server
	// that answers 'N'.
	TLS         *tls.Config
	TLSRequired bool
	// Cluster, when set, holds several hosts (Host and Port are then ignored): a new
	// connection goes to the first that fits Attrs, in Balance's order (hosts.go).
	Cluster *Cluster
	Attrs   SessionAttrs
	Balance Balance
	// Only, when set with Cluster, is the one host new connections go to (a standby's
	// pool for replica reads, replica.go); Attrs still checks its role at login.
	Only *Host
}

// Network returns the dial network and address for the target.
func (t *Target) Network() (network, addr string) {
	host := t.Host
	if host == "" {
		host = defaultSocketDir()
	}
	port := t.Port
	if port == 0 {
		port = 5432
	}
	if strings.HasPrefix(host, "/") {
		return "unix", host + "/.s.PGSQL." + strconv.Itoa(port)
	}
	return "tcp", net.JoinHostPort(host, strconv.Itoa(port))
}

func defaultSocketDir() string {
	if st, err := os.Stat("/var/run/postgresql"); err == nil && st.IsDir() {
		return "/var/run/postgresql"
	}
	return "/tmp"
}

// ErrServerLogin wraps failures while logging in to a server.
var ErrServerLogin = errors.New("server login failed")

// ErrServerTLS and ErrServerAuthMethod mark, beside ErrServerLogin, why a server login
// failed, for the hint a client gets: TLS (the server refused it, or the handshake
// failed), or an authentication method pgmux has no password or keys for (or does not
// support). The error's text is unchanged.
var (
	ErrServerTLS        = errors.New("server TLS failed")
	ErrServerAuthMethod = errors.New("server authentication method cannot be answered")
)

// markedError is err, also matching kind under errors.Is.
type markedError struct{ kind, err error }

func (e markedError) Error() string   { return e.err.Error() }
func (e markedError) Unwrap() []error { return []error{e.kind, e.err} }

// loginErr returns "server login failed: <format>", also matching kind.
func loginErr(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrServerLogin, markedError{kind, fmt.Errorf(format, args...)})
}

// login performs the startup exchange on nc and returns the server's key data and
// parameters. A *pgerr.Error from the server is returned wrapped, so callers can relay it.
func login(ctx context.Context, nc net.Conn, t *Target) (net.Conn, *wire.Reader, uint32, []byte, Params, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
		defer nc.SetDeadline(noDeadline)
	}
	// No TLS on a unix socket, as in PgBouncer and libpq: PostgreSQL never offers it
	// there, and server_tls_sslmode = require would refuse every login.
	if network, _ := t.Network(); t.TLS != nil && network != "unix" {
		var err error
		if nc, err = startTLS(nc, t); err != nil {
			return nc, nil, 0, nil, nil, err
		}
	}
	rd := wire.NewReader(nc)
	msg := startupMessage(t)
	if _, err := nc.Write(msg); err != nil {
		return nc, nil, 0, nil, nil, err
	}
	var (
		pid    uint32
		key    []byte
		params Params
		scram  *auth.ClientSCRAM
	)
	for {
		typ, n, err := rd.Next()
		if err != nil {
			return nc, nil, 0, nil, nil, err
		}
		m, err := rd.Message(n)
		if err != nil {
			return nc, nil, 0, nil, nil, err
		}
		body := wire.Body(m)
		switch typ {
		case 'R':
			if scram, err = answerAuth(nc, t, body, scram); err != nil {
				return nc, nil, 0, nil, nil, err
			}
		case 'S':
			k, v, err := wire.ParseParameterStatus(body)
			if err != nil {
				return nc, nil, 0, nil, nil, err
			}
			params.Set(string(k), string(v))
		case 'K':
			if len(body) < 8 {
				return nc, nil, 0, nil, nil, wire.ErrMalformed
			}
			pid = binary.BigEndian.Uint32(body)
			key = append([]byte(nil), body[4:]...)
		case 'E':
			pe, _ := pgerr.Parse(body)
			return nc, nil, 0, nil, nil, fmt.Errorf("%w: %w", ErrServerLogin, pe)
		case 'N':
		case 'v': // NegotiateProtocolVersion: we ask for 3.0, nothing to do
		case 'Z':
			return nc, rd, pid, key, params, nil
		default:
			return nc, nil, 0, nil, nil, fmt.Errorf("%w: unexpected message %q during login", ErrServerLogin, typ)
		}
	}
}

var noDeadline = timeZero()

func startupMessage(t *Target) []byte {
	b := make([]byte, 4, 128)
	b = wire.AppendInt32(b, 196608)
	b = wire.AppendString(b, "user")
	b = wire.AppendString(b, t.User)
	b = wire.AppendString(b, "database")
	b = wire.AppendString(b, t.Database)
	for _, p := range t.Params {
		if p.Value != "" {
			b = wire.AppendString(b, p.Name)
			b = wire.AppendString(b, p.Value)
		}
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

// sslRequest asks the server for TLS; it answers 'S' or 'N'.
var sslRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

func startTLS(nc net.Conn, t *Target) (net.Conn, error) {
	if _, err := nc.Write(sslRequest); err != nil {
		return nc, err
	}
	var ans [1]byte
	if _, err := nc.Read(ans[:]); err != nil {
		return nc, err
	}
	if ans[0] != 'S' {
		if t.TLSRequired {
			return nc, loginErr(ErrServerTLS, "server does not support TLS")
		}
		return nc, nil
	}
	tc := tls.Client(nc, t.TLS)
	if err := tc.Handshake(); err != nil {
		return nc, loginErr(ErrServerTLS, "TLS handshake: %w", err)
	}
	return tc, nil
}

func answerAuth(nc net.Conn, t *Target, body []byte, scram *auth.ClientSCRAM) (*auth.ClientSCRAM, error) {
	code, rest, err := wire.Int32(body)
	if err != nil {
		return scram, err
	}
	var out []byte
	switch code {
	case wire.AuthOK:
		return scram, nil
	case wire.AuthCleartext:
		if t.Password == "" || isMD5Hash(t.Password) {
			return scram, loginErr(ErrServerAuthMethod, "server asks for a cleartext password but no plain password is configured for user %q", t.User)
		}
		out = passwordMessage(t.Password)
	case wire.AuthMD5:
		if len(rest) < 4 || t.Password == "" {
			return scram, loginErr(ErrServerAuthMethod, "server asks for md5 but no password is configured for user %q", t.User)
		}
		var salt [4]byte
		copy(salt[:], rest)
		out = passwordMessage(auth.MD5Response(t.User, t.Password, salt))
	case wire.AuthSASL:
		mechs := splitMechanisms(rest)
		switch {
		case t.SCRAMClientKey != nil:
			scram = auth.NewClientSCRAMFromKeys(t.SCRAMClientKey, t.SCRAMServerKey)
		case t.Password != "" && !isMD5Hash(t.Password):
			scram = auth.NewClientSCRAM(t.User, t.Password)
		default:
			return scram, loginErr(ErrServerAuthMethod, "server asks for SCRAM but neither a plain password nor SCRAM keys are known for user %q", t.User)
		}
		mech, err := scram.Mechanism(mechs)
		if err != nil {
			return scram, loginErr(ErrServerAuthMethod, "%w", err)
		}
		first := scram.First()
		out, s := wire.Begin(nil, 'p')
		out = wire.AppendString(out, mech)
		out = wire.AppendInt32(out, int32(len(first)))
		out = append(out, first...)
		out = wire.Finish(out, s)
		_, err = nc.Write(out)
		return scram, err
	case wire.AuthSASLContinue:
		if scram == nil {
			return scram, fmt.Errorf("%w: unexpected SASL continue", ErrServerLogin)
		}
		final, err := scram.Final(rest)
		if err != nil {
			return scram, fmt.Errorf("%w: %w", ErrServerLogin, err)
		}
		out, s := wire.Begin(nil, 'p')
		out = append(out, final...)
		out = wire.Finish(out, s)
		_, err = nc.Write(out)
		return scram, err
	case wire.AuthSASLFinal:
		if scram == nil {
			return scram, fmt.Errorf("%w: unexpected SASL final", ErrServerLogin)
		}
		if err := scram.Verify(rest); err != nil {
			return scram, fmt.Errorf("%w: %w", ErrServerLogin, err)
		}
		return scram, nil
	default:
		return scram, loginErr(ErrServerAuthMethod, "unsupported authentication method %d requested by server", code)
	}
	_, err = nc.Write(out)
	return scram, err
}

func passwordMessage(pw string) []byte {
	b, s := wire.Begin(nil, 'p')
	b = wire.AppendString(b, pw)
	return wire.Finish(b, s)
}

func splitMechanisms(b []byte) []string {
	var out []string
	for len(b) > 0 && b[0] != 0 {
		m, rest, err := wire.CString(b)
		if err != nil {
			break
		}
		out = append(out, string(m))
		b = rest
	}
	return out
}

func isMD5Hash(s string) bool { return len(s) == 35 && strings.HasPrefix(s, "md5") }

func timeZero() (t time.Time) { return t }
