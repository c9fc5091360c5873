package e2e

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/internal/pgtest"
)

// rawConn speaks the wire protocol by hand, for what no driver sends.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	rd *bufio.Reader
}

func dialRaw(t testing.TB, host string, port int) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	require.NoError(t, nc.SetDeadline(time.Now().Add(20*time.Second)))
	return &rawConn{t: t, nc: nc, rd: bufio.NewReader(nc)}
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	_, err := c.nc.Write(b)
	require.NoError(c.t, err)
}

// startup sends a StartupMessage for protocol 3.minor with key/value parameters.
func (c *rawConn) startup(minor int, kv ...string) {
	c.t.Helper()
	body := binary.BigEndian.AppendUint32(nil, uint32(3<<16|minor))
	for _, s := range kv {
		body = append(append(body, s...), 0)
	}
	body = append(body, 0)
	c.write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body)+4)), body...))
}

// msg sends a typed message.
func (c *rawConn) msg(typ byte, body []byte) {
	c.t.Helper()
	b := append([]byte{typ}, binary.BigEndian.AppendUint32(nil, uint32(len(body)+4))...)
	c.write(append(b, body...))
}

// read returns the next backend message.
func (c *rawConn) read() (byte, []byte) {
	c.t.Helper()
	var hdr [5]byte
	_, err := io.ReadFull(c.rd, hdr[:])
	require.NoError(c.t, err)
	n := binary.BigEndian.Uint32(hdr[1:])
	require.GreaterOrEqual(c.t, n, uint32(4))
	body := make([]byte, n-4)
	_, err = io.ReadFull(c.rd, body)
	require.NoError(c.t, err)
	return hdr[0], body
}

// errorFields decodes an ErrorResponse body.
func errorFields(body []byte) map[byte]string {
	f := map[byte]string{}
	for len(body) > 1 && body[0] != 0 {
		code := body[0]
		end := strings.IndexByte(string(body[1:]), 0)
		if end < 0 {
			break
		}
		f[code] = string(body[1 : 1+end])
		body = body[2+end:]
	}
	return f
}

// answerMD5 answers an AuthenticationMD5Password request.
func (c *rawConn) answerMD5(user, password string, salt []byte) {
	c.t.Helper()
	inner := md5.Sum([]byte(password + user))
	outer := md5.Sum(append([]byte(hex.EncodeToString(inner[:])), salt...))
	c.msg('p', append([]byte("md5"+hex.EncodeToString(outer[:])), 0))
}

// finishLogin reads AuthenticationOk through ReadyForQuery and returns the reported
// parameters.
func (c *rawConn) finishLogin() map[string]string {
	c.t.Helper()
	params := map[string]string{}
	for {
		typ, body := c.read()
		switch typ {
		case 'R':
			require.Equal(c.t, uint32(0), binary.BigEndian.Uint32(body), "want AuthenticationOk")
		case 'S':
			kv := strings.SplitN(strings.TrimSuffix(string(body), "\x00"), "\x00", 2)
			params[kv[0]] = kv[1]
		case 'K':
		case 'Z':
			return params
		case 'E':
			c.t.Fatalf("login failed: %v", errorFields(body))
		default:
			c.t.Fatalf("unexpected message %q during login", typ)
		}
	}
}

// query runs a simple query and returns the first column of each row.
func (c *rawConn) query(sql string) []string {
	c.t.Helper()
	c.msg('Q', append([]byte(sql), 0))
	var out []string
	for {
		typ, body := c.read()
		switch typ {
		case 'D':
			n := binary.BigEndian.Uint32(body[2:6])
			out = append(out, string(body[6:6+n]))
		case 'E':
			c.t.Fatalf("query %q failed: %v", sql, errorFields(body))
		case 'Z':
			return out
		}
	}
}

// TestStartupEdgeCases sends first packets by hand: an old protocol version, a newer
// minor version with protocol options, SSLRequest without TLS, and options.
func TestStartupEdgeCases(t *testing.T) {
	pg := pgtest.Start(t)
	m := startMux(t, pg, bouncer{AuthType: "md5", Users: map[string]string{
		pgtest.AppUser: pgtest.AppPassword, pgtest.MD5User: pgtest.MD5Password}})

	t.Run("protocol-2.0", func(t *testing.T) {
		c := dialRaw(t, m.Host, m.Port)
		// A version 2 startup packet: fixed-size database, user, options, unused, tty.
		body := binary.BigEndian.AppendUint32(nil, 2<<16)
		fixed := make([]byte, 64+32+64+64+64)
		copy(fixed, pgtest.AppDB)
		copy(fixed[64:], pgtest.AppUser)
		body = append(body, fixed...)
		c.write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body)+4)), body...))
		typ, resp := c.read()
		require.Equal(t, byte('E'), typ)
		f := errorFields(resp)
		require.Equal(t, "FATAL", f['S'])
		require.Equal(t, "0A000", f['C'])
		require.Contains(t, f['M'], "unsupported frontend protocol 2.0")
		require.Contains(t, f['M'], "3.0")
		_, err := c.rd.ReadByte()
		require.ErrorIs(t, err, io.EOF, "pgmux must close the connection")
	})

	// PostgreSQL answers a 3.1 StartupMessage with NegotiateProtocolVersion before the
	// authentication request; so must pgmux.
	for _, target := range []struct {
		name string
		host string
		port int
		user string
		pass string
	}{
		{"postgres", pg.Host, pg.Port, pgtest.MD5User, pgtest.MD5Password},
		{"pgmux", m.Host, m.Port, pgtest.AppUser, pgtest.AppPassword},
	} {
		t.Run("protocol-3.1/"+target.name, func(t *testing.T) {
			c := dialRaw(t, target.host, target.port)
			c.startup(1, "user", target.user, "database", pgtest.AppDB, "_pq_.test_option", "on")
			typ, body := c.read()
			require.Equal(t, byte('v'), typ, "want NegotiateProtocolVersion first, got %q", typ)
			require.Equal(t, uint32(3<<16), binary.BigEndian.Uint32(body[0:4]), "newest version: 3.0")
			require.Equal(t, uint32(1), binary.BigEndian.Uint32(body[4:8]), "unrecognised options")
			require.Equal(t, "_pq_.test_option\x00", string(body[8:]))
			typ, body = c.read()
			require.Equal(t, byte('R'), typ)
			require.Equal(t, uint32(5), binary.BigEndian.Uint32(body), "want AuthenticationMD5Password")
			c.answerMD5(target.user, target.pass, body[4:8])
			c.finishLogin()
			require.Equal(t, []string{"1"}, c.query("SELECT 1"))
		})
	}

	t.Run("ssl-request-without-tls", func(t *testing.T) {
		c := dialRaw(t, m.Host, m.Port)
		c.write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f})
		b, err := c.rd.ReadByte()
		require.NoError(t, err)
		require.Equal(t, byte('N'), b)
		c.startup(0, "user", pgtest.AppUser, "database", pgtest.AppDB)
		typ, body := c.read()
		require.Equal(t, byte('R'), typ)
		c.answerMD5(pgtest.AppUser, pgtest.AppPassword, body[4:8])
		c.finishLogin()
		require.Equal(t, []string{"on"}, c.query("SELECT 'on'"))

		// libpq's default, sslmode=prefer, asks for TLS first and carries on without.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn := connect(t, strings.Replace(m.URL(pgtest.AppUser, pgtest.AppPassword, pgtest.AppDB), "sslmode=disable", "sslmode=prefer", 1))
		var n int
		require.NoError(t, conn.QueryRow(ctx, "SELECT 5").Scan(&n))
		require.Equal(t, 5, n)
	})

	t.Run("options-application-name", func(t *testing.T) {
		c := dialRaw(t, m.Host, m.Port)
		c.startup(0, "user", pgtest.AppUser, "database", pgtest.AppDB, "options", "-c application_name=from\\ options")
		typ, body := c.read()
		require.Equal(t, byte('R'), typ)
		c.answerMD5(pgtest.AppUser, pgtest.AppPassword, body[4:8])
		params := c.finishLogin()
		require.Equal(t, "from options", params["application_name"])
		require.Equal(t, []string{"from options"}, c.query("SHOW application_name"))
	})
}
