//go:build linux

package proxy_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/protocol/auth"
	"github.com/pgmux/pgmux/proxy"
)

// fdStressFor is how long TestDescriptorStress keeps its clients going.
const fdStressFor = 6 * time.Second

// TestDescriptorStress: a client descriptor that pgmux closes twice, or uses after
// closing it, is another connection's by then (the next accept, or a server dial, takes
// the lowest free number): the second close cuts that connection, and a write meant for
// the first lands in it. Clients whose logins fail every way a login can fail (TLS
// refused for its protocol version, direct TLS without ALPN, a handshake cut short,
// plaintext where TLS is required, garbage after 'S', a wrong password,
// client_login_timeout, a client vanishing in the middle of its login, KILL of the
// database it logs in to) come and go, on the client loops and off them, while other
// clients, plain and over TLS, run queries that each check their own answer. None of
// those may fail or read another's value, and pgmux may never meet a closed descriptor
// (EBADF, "bad file descriptor", in any log line).
func TestDescriptorStress(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	pg := pgtest.Start(t)
	cert, key := selfSignedCert(t, t.TempDir())
	victim := map[string]string{"victim": fmt.Sprintf("host=%s port=%d dbname=%s", pg.Host, pg.Port, pgtest.AppDB)}
	opts := func(name string, kv ...string) harnessOpts {
		extra := map[string]string{"auth_type": "scram-sha-256", "client_login_timeout": "1", "verbose": "1"}
		for i := 0; i < len(kv); i += 2 {
			extra[kv[i]] = kv[i+1]
		}
		return harnessOpts{extra: extra, dbs: victim, log: log.With(zap.String("proxy", name))}
	}
	tlsKV := []string{"client_tls_cert_file", cert, "client_tls_key_file", key, "client_tls_protocols", "tlsv1.3"}
	plain := startProxy(t, opts("plain"))                                                                          // logins on the loops
	allow := startProxy(t, opts("allow", slices.Concat(tlsKV, []string{"client_tls_sslmode", "allow"})...))        // TLS optional
	required := startProxy(t, opts("require", slices.Concat(tlsKV, []string{"client_tls_sslmode", "require"})...)) // TLS only
	// SCRAM secrets of few iterations: a client derives its key from the password at
	// every login, as many rounds as the secret says, in this process, which runs pgmux
	// too. PostgreSQL's 4096 cost 42 ms of CPU a login under the race detector (0.8 ms
	// without): more than half of this test's CPU, hundreds of logins a run, each with
	// client_login_timeout (1 s, for the stalled logins' sake) to finish in. Two runs
	// sharing one core took up to 950 ms a checked login that way (the rare FATAL
	// client_login_timeout of a loaded -race run); with 16 rounds, 250 ms at p99 without
	// TLS and 760 ms with it.
	creds := map[string]config.Credential{
		pgtest.AppUser: {User: pgtest.AppUser, Password: cheapSCRAM("stress-pw")},
		"admin":        {User: "admin", Password: cheapSCRAM("admin-pw")},
	}
	for _, h := range []*harness{plain, allow, required} {
		require.NoError(t, h.srv.Reload(h.srv.Config().Clone(), creds))
		// A session left behind (its descriptor closed under it: a login that waits for
		// an event that never comes) would hold the harness's Close up for ever.
		t.Cleanup(func() {
			closed := make(chan struct{})
			go func() { _ = h.srv.Close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
				// A panic here would still run the harness's own Close, which waits too: the
				// process ends instead.
				msg := fmt.Sprintf("pgmux did not shut down in 5 s: %d client connections left", proxy.LiveClients(h.srv))
				go panic(msg)
				select {}
			}
		})
	}

	stop := time.Now().Add(fdStressFor)
	running := func() bool { return time.Now().Before(stop) }
	var wg sync.WaitGroup
	var queries, failedLogins atomic.Int64
	spawn := func(id int, f func(id int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(id)
		}()
	}

	// The checked clients: each selects values of its own and compares them, over
	// connections it opens again and again (the extended protocol and the simple one).
	good := func(h *harness, sslmode string) func(id int) {
		return func(id int) {
			for n := 0; running(); n++ {
				start := time.Now()
				conn, err := stressConnect(h, pgtest.AppUser, "stress-pw", "app", sslmode, n%2 == 0)
				if err != nil {
					t.Errorf("client %d (sslmode %s): connect, after %v: %v", id, sslmode, time.Since(start), err)
					return
				}
				for i := 0; i < 20 && running(); i++ {
					want := int64(id)<<32 | int64(n)<<12 | int64(i)
					var got int64
					qctx, qcancel := context.WithTimeout(context.Background(), 10*time.Second)
					err := conn.QueryRow(qctx, "SELECT $1::int8", want).Scan(&got)
					qcancel()
					if err != nil {
						t.Errorf("client %d (sslmode %s): query: %v", id, sslmode, err)
						closeStress(conn)
						return
					}
					if got != want {
						t.Errorf("client %d (sslmode %s): asked for %d, read %d: another client's answer", id, sslmode, want, got)
					}
					queries.Add(1)
					if i%7 == 3 {
						time.Sleep(time.Duration(id%5) * time.Millisecond)
					}
				}
				closeStress(conn)
			}
		}
	}
	id := 0
	for range 2 {
		for _, g := range []struct {
			h       *harness
			sslmode string
		}{{plain, "disable"}, {allow, "disable"}, {allow, "require"}, {required, "require"}} {
			id++
			spawn(id, good(g.h, g.sslmode))
		}
	}

	// The failing logins, round-robin over the ways, several at once.
	bad := []func(n int) error{
		func(int) error { return tlsOldVersion(allow) },
		func(int) error { return directTLSNoALPN(allow) },
		func(n int) error { return handshakeCut(allow, n%2 == 0) },
		func(int) error { return plaintextRefused(required) },
		func(n int) error { return garbageAfterS(allow, n%2 == 0) },
		func(n int) error { return loginStalls(pickStress(n, plain, allow)) },
		func(n int) error { return vanishInLogin(pickStress(n, plain, allow), n%2 == 0) },
		func(n int) error {
			h, mode := pickStress(n, plain, required), "disable"
			if h == required {
				mode = "require"
			}
			c, err := stressConnect(h, pgtest.AppUser, "wrong-pw", "app", mode, true)
			if err == nil {
				closeStress(c)
				return errors.New("a wrong password logged in")
			}
			return nil
		},
		func(n int) error { return killedVictim(pickStress(n, plain, allow)) },
	}
	for _, h := range []*harness{plain, allow} {
		id++
		spawn(id, func(int) {
			for running() {
				_ = killedVictim(h)
			}
		})
	}
	for w := range 6 {
		id++
		spawn(id, func(int) {
			for n := w; running(); n++ {
				if err := bad[n%len(bad)](n / len(bad)); err != nil {
					t.Errorf("failing login of kind %d: %v", n%len(bad), err)
				}
				failedLogins.Add(1)
			}
		})
	}
	// KILL of the database the victims log in to, on the loops and off.
	for _, h := range []*harness{plain, allow} {
		id++
		spawn(id, func(int) {
			adm, err := stressConnect(h, "admin", "admin-pw", "pgbouncer", "disable", true)
			if err != nil {
				t.Errorf("console: %v", err)
				return
			}
			defer closeStress(adm)
			for running() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, _ = adm.Exec(ctx, "KILL victim")
				_, _ = adm.Exec(ctx, "RESUME victim")
				cancel()
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	t.Logf("%d checked queries, %d failed logins", queries.Load(), failedLogins.Load())
	for _, e := range logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += fmt.Sprintf(" %s=%v", k, v)
		}
		if strings.Contains(line, "bad file descriptor") {
			t.Errorf("pgmux used a closed descriptor: %s", line)
		}
	}
	require.Positive(t, queries.Load())
	// Every client has left: every session ends (a login that waits in vain ends at
	// client_login_timeout).
	for _, h := range []*harness{plain, allow, required} {
		require.Eventually(t, func() bool { return proxy.LiveClients(h.srv) == 0 }, 5*time.Second, 20*time.Millisecond,
			"client connections left behind: %d", proxy.LiveClients(h.srv))
	}
	// Every descriptor in an epoll set of the process is still the socket it was
	// registered as: a stale entry (a number closed while registered, its socket kept
	// alive by a duplicate) reports that socket's events under the next socket's number.
	require.Empty(t, proxy.StaleEpollEntries(t), "epoll entries of descriptors closed while registered")
}

// cheapSCRAM is a SCRAM secret for pw of 16 iterations (see TestDescriptorStress).
func cheapSCRAM(pw string) string {
	return auth.NewVerifier(pw, auth.NewSalt(), 16).String()
}

func pickStress(n int, a, b *harness) *harness {
	if n%2 == 0 {
		return a
	}
	return b
}

// stressConnect logs in through pgx; simple picks the simple query protocol. Channel
// binding is off: the test certificate is Ed25519, for which tls-server-end-point is
// undefined (RFC 5929), and pgx then refuses SCRAM-SHA-256-PLUS.
func stressConnect(h *harness, user, pw, db, sslmode string, simple bool) (*pgx.Conn, error) {
	cc, err := pgx.ParseConfig(fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=%s&channel_binding=disable",
		user, pw, h.port, db, sslmode))
	if err != nil {
		return nil, err
	}
	if simple {
		cc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.ConnectConfig(ctx, cc)
}

// killedVictim logs in to the database the console keeps killing and runs a query,
// which a KILL may end anywhere.
func killedVictim(h *harness) error {
	c, err := stressConnect(h, pgtest.AppUser, "stress-pw", "victim", "disable", true)
	if err == nil {
		var one int
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = c.QueryRow(ctx, "SELECT 1").Scan(&one)
		cancel()
		closeStress(c)
	}
	return nil
}

// closeStress closes a pgx connection, waiting at most a second for pgmux to take its
// Terminate.
func closeStress(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

// stressDial opens a raw connection to h with a deadline for all of its use.
func stressDial(h *harness) (net.Conn, error) {
	nc, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(h.port), 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	return nc, nil
}

// untilEnd reads what pgmux sends until it closes the connection.
func untilEnd(nc net.Conn) error {
	_, err := io.Copy(io.Discard, nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("pgmux kept the connection open")
	}
	return nil
}

// sslAccepted sends an SSLRequest and checks for 'S'.
func sslAccepted(nc net.Conn) error {
	if _, err := nc.Write(sslRequest); err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(nc, b); err != nil {
		return err
	}
	if b[0] != 'S' {
		return fmt.Errorf("SSLRequest answered %q", b)
	}
	return nil
}

// tlsOldVersion offers TLS 1.2 to a server that takes 1.3 only.
func tlsOldVersion(h *harness) error {
	nc, err := stressDial(h)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := sslAccepted(nc); err != nil {
		return err
	}
	if tls.Client(nc, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}).Handshake() == nil {
		return errors.New("a TLS 1.2 handshake went through")
	}
	return untilEnd(nc)
}

// directTLSNoALPN opens with TLS directly, without the "postgresql" ALPN protocol.
func directTLSNoALPN(h *harness) error {
	nc, err := stressDial(h)
	if err != nil {
		return err
	}
	defer nc.Close()
	tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
	if tc.Handshake() == nil {
		_, _ = io.Copy(io.Discard, tc) // the FATAL, then the end
	}
	return nil
}

// handshakeCut starts a TLS handshake and leaves in the middle of it (abort: with a
// reset).
func handshakeCut(h *harness, abort bool) error {
	nc, err := stressDial(h)
	if err != nil {
		return err
	}
	if err := sslAccepted(nc); err != nil {
		nc.Close()
		return err
	}
	_, _ = nc.Write([]byte{0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00, 0xfc, 0x03, 0x03})
	if abort {
		_ = nc.(*net.TCPConn).SetLinger(0)
	}
	return nc.Close()
}

// plaintextRefused sends a plaintext StartupMessage where TLS is required.
func plaintextRefused(h *harness) error {
	nc, err := stressDial(h)
	if err != nil {
		return err
	}
	defer nc.Close()
	if _, err := nc.Write(startupBytes()); err != nil {
		return err
	}
	return untilEnd(nc)
}

// garbageAfterS sends bytes that are no TLS record after an SSLRequest: once 'S' came,
// or (early) right behind the request.
func garbageAfterS(h *harness, early bool) error {
	nc, err := stressDial(h)
	if err != nil {
		return err
	}
	defer nc.Close()
	garbage := []byte("GET / HTTP/1.0\r\n\r\n")
	if early {
		_, err = nc.Write(append(append([]byte(nil), sslRequest...), garbage...))
	} else if err = sslAccepted(nc); err == nil {
		_, err = nc.Write(garbage)
	}
	if err != nil {
		return err
	}
	return untilEnd(nc)
}

// loginStalls sends half a StartupMessage and waits for client_login_timeout.
func loginStalls(h *harness) error {
	nc, err := stressDial(h)
	if err != nil {
		return err
	}
	defer nc.Close()
	if _, err := nc.Write(startupBytes()[:10]); err != nil {
		return err
	}
	return untilEnd(nc)
}

// vanishInLogin sends its StartupMessage and leaves when asked for its password (abort:
// with a reset).
func vanishInLogin(h *harness, abort bool) error {
	nc, err := stressDial(h)
	if err != nil {
		return err
	}
	if _, err := nc.Write(startupBytes()); err != nil {
		nc.Close()
		return err
	}
	_, _ = io.ReadFull(nc, make([]byte, 1))
	if abort {
		_ = nc.(*net.TCPConn).SetLinger(0)
	}
	return nc.Close()
}
