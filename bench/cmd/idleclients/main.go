// Command idleclients opens N client connections to a PostgreSQL server or pooler, completes
// the startup and authentication handshake on each (raw protocol: trust, cleartext, MD5 or
// SCRAM-SHA-256),
// then holds them idle so the pooler's memory per idle client can be measured.
//
//	idleclients -addr 127.0.0.1:6432 -n 10000 -user postgres -db postgres -hold 2m
//
// It prints "ready N" on stdout once every connection has seen ReadyForQuery, then holds
// them until SIGTERM/SIGINT, stdin closing (with -stdin), or -hold elapses, and exits.
//
// With -query SQL, each client runs SQL once after its login, in the extended protocol as
// drivers do (Parse of the unnamed statement, Bind, Describe, Execute, Sync; -named: a
// statement of its own name, as pgx's statement cache), and is held idle after that: what
// an application's pooled connection costs between its requests, where a client that
// only logged in has made nothing that outlives a request.
//
// With -reuse-keys, SCRAM's keys are derived once (PBKDF2 at the server's iteration
// count, the costly step of a SCRAM login) and every later client proves them without
// deriving: the client side of a login storm then costs little, and what the storm
// measures is the pooler's work per login (bench/logins-storm.sh).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pgmux/pgmux/protocol/auth"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "idleclients:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:6432", "pooler address host:port (loopback only)")
	n := flag.Int("n", 1000, "number of idle client connections")
	user := flag.String("user", "postgres", "user name")
	db := flag.String("db", "postgres", "database name")
	password := flag.String("password", "", "password for cleartext, MD5 or SCRAM-SHA-256 authentication")
	conc := flag.Int("concurrency", 64, "connections being set up at once")
	hold := flag.Duration("hold", 2*time.Minute, "longest time to hold the connections")
	dialTimeout := flag.Duration("timeout", 10*time.Second, "per-connection handshake timeout")
	watchStdin := flag.Bool("stdin", false, "also stop when standard input closes")
	flag.BoolVar(&reuseKeys, "reuse-keys", false, "derive SCRAM keys once and reuse them for every client")
	flag.StringVar(&query, "query", "", "run this statement once on each client after its login (extended protocol)")
	flag.BoolVar(&named, "named", false, "with -query: prepare it as a named statement, not the unnamed one")
	flag.Parse()
	if *n < 1 || *conc < 1 {
		return errors.New("-n and -concurrency must be positive")
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("refusing non-loopback address %s", *addr)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *hold)
	defer cancel()
	if *watchStdin {
		go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	}

	conns := make([]net.Conn, *n)
	var failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	sem := make(chan struct{}, *conc)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range conns {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			c, err := connect(*addr, *user, *db, *password, *dialTimeout)
			if err != nil {
				failed.Add(1)
				errOnce.Do(func() { firstErr = err })
				return
			}
			conns[i] = c
		}(i)
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				_, _ = c.Write([]byte{'X', 0, 0, 0, 4}) // Terminate
				c.Close()
			}
		}
	}()
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d of %d connections failed; first: %w", f, *n, firstErr)
	}
	fmt.Printf("ready %d %.3fs\n", *n, time.Since(start).Seconds())
	<-ctx.Done()
	return nil
}

// connect performs startup and authentication and returns once ReadyForQuery arrives. The
// buffered reader is dropped afterwards so the held connection costs this process little.
func connect(addr, user, db, password string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	if err := handshake(c, user, db, password); err != nil {
		c.Close()
		return nil, err
	}
	if query != "" {
		if err := runQuery(c); err != nil {
			c.Close()
			return nil, err
		}
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

func handshake(c net.Conn, user, db, password string) error {
	body := []byte{0, 3, 0, 0} // protocol 3.0
	for _, kv := range [][2]string{{"user", user}, {"database", db}, {"application_name", "idleclients"}} {
		body = append(append(append(append(body, kv[0]...), 0), kv[1]...), 0)
	}
	body = append(body, 0)
	msg := binary.BigEndian.AppendUint32(nil, uint32(len(body)+4))
	if _, err := c.Write(append(msg, body...)); err != nil {
		return err
	}
	r := bufio.NewReaderSize(c, 512)
	var scram *auth.ClientSCRAM
	for {
		typ, payload, err := readMsg(r)
		if err != nil {
			return err
		}
		switch typ {
		case 'R':
			if len(payload) < 4 {
				return errors.New("short authentication message")
			}
			switch code := binary.BigEndian.Uint32(payload); code {
			case 0: // AuthenticationOk
			case 3: // cleartext
				if err := sendPassword(c, password); err != nil {
					return err
				}
			case 5: // MD5 with a 4-byte salt
				if len(payload) < 8 {
					return errors.New("short MD5 request")
				}
				inner := md5.Sum([]byte(password + user))
				outer := md5.Sum(append([]byte(hex.EncodeToString(inner[:])), payload[4:8]...))
				if err := sendPassword(c, "md5"+hex.EncodeToString(outer[:])); err != nil {
					return err
				}
			case 10: // AuthenticationSASL: the mechanisms, each NUL-terminated
				var offered []string
				for _, m := range bytes.Split(payload[4:], []byte{0}) {
					if len(m) > 0 {
						offered = append(offered, string(m))
					}
				}
				if k := derived.Load(); k != nil {
					scram = auth.NewClientSCRAMFromKeys(k.client, k.server)
				} else {
					scram = auth.NewClientSCRAM(user, password)
				}
				mech, err := scram.Mechanism(offered)
				if err != nil {
					return err
				}
				first := scram.First()
				body := append(append([]byte(mech), 0), binary.BigEndian.AppendUint32(nil, uint32(len(first)))...)
				if err := sendSASL(c, append(body, first...)); err != nil {
					return err
				}
			case 11: // AuthenticationSASLContinue: server-first-message
				if scram == nil {
					return errors.New("SASLContinue before AuthenticationSASL")
				}
				final, err := scram.Final(payload[4:])
				if err != nil {
					return err
				}
				if reuseKeys && derived.Load() == nil {
					if err := deriveOnce(password, string(payload[4:])); err != nil {
						return err
					}
				}
				if err := sendSASL(c, final); err != nil {
					return err
				}
			case 12: // AuthenticationSASLFinal: the server's signature
				if scram == nil {
					return errors.New("SASLFinal before AuthenticationSASL")
				}
				if err := scram.Verify(payload[4:]); err != nil {
					return err
				}
			default:
				return fmt.Errorf("unsupported authentication request %d (use trust, password, md5 or scram-sha-256)", code)
			}
		case 'E':
			return fmt.Errorf("server error: %q", payload)
		case 'Z':
			return nil
		}
	}
}

// reuseKeys is -reuse-keys; derived holds the keys once a login has derived them.
var (
	reuseKeys bool
	derived   atomic.Pointer[scramKeys]
)

type scramKeys struct{ client, server []byte }

// deriveOnce derives SCRAM's ClientKey and ServerKey for password from the salt and
// iteration count of a server-first-message ("r=...,s=...,i=...") and keeps them.
func deriveOnce(password, serverFirst string) error {
	var salt []byte
	iter := 0
	for _, attr := range strings.Split(serverFirst, ",") {
		var err error
		switch {
		case strings.HasPrefix(attr, "s="):
			salt, err = base64.StdEncoding.DecodeString(attr[2:])
		case strings.HasPrefix(attr, "i="):
			iter, err = strconv.Atoi(attr[2:])
		}
		if err != nil {
			return fmt.Errorf("server-first-message %q: %w", serverFirst, err)
		}
	}
	if salt == nil || iter < 1 {
		return fmt.Errorf("server-first-message %q: no salt or iteration count", serverFirst)
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		return err
	}
	mac := func(msg string) []byte {
		h := hmac.New(sha256.New, salted)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	derived.CompareAndSwap(nil, &scramKeys{client: mac("Client Key"), server: mac("Server Key")})
	return nil
}

func sendPassword(c net.Conn, pw string) error {
	msg := binary.BigEndian.AppendUint32([]byte{'p'}, uint32(len(pw)+5))
	_, err := c.Write(append(append(msg, pw...), 0))
	return err
}

// sendSASL sends a SASLInitialResponse or SASLResponse ('p') carrying body.
func sendSASL(c net.Conn, body []byte) error {
	msg := binary.BigEndian.AppendUint32([]byte{'p'}, uint32(len(body)+4))
	_, err := c.Write(append(msg, body...))
	return err
}

func readMsg(r *bufio.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n < 4 || n > 1<<20 {
		return 0, nil, fmt.Errorf("bad message length %d", n)
	}
	buf := make([]byte, n-4)
	_, err := io.ReadFull(r, buf)
	return hdr[0], buf, err
}

// query and named are -query and -named.
var (
	query string
	named bool
)

// runQuery sends query as one extended-protocol request and reads its answer up to
// ReadyForQuery; an ErrorResponse fails it.
func runQuery(c net.Conn) error {
	stmt := ""
	if named {
		stmt = "idleclients_q"
	}
	msg := func(b []byte, typ byte, body ...[]byte) []byte {
		n := 4
		for _, p := range body {
			n += len(p)
		}
		b = binary.BigEndian.AppendUint32(append(b, typ), uint32(n))
		for _, p := range body {
			b = append(b, p...)
		}
		return b
	}
	cstr := func(v string) []byte { return append([]byte(v), 0) }
	var b []byte
	b = msg(b, 'P', cstr(stmt), cstr(query), []byte{0, 0})
	b = msg(b, 'B', cstr(""), cstr(stmt), []byte{0, 0, 0, 0, 0, 0})
	b = msg(b, 'D', []byte{'P', 0})
	b = msg(b, 'E', cstr(""), []byte{0, 0, 0, 0})
	b = msg(b, 'S')
	if _, err := c.Write(b); err != nil {
		return err
	}
	r := bufio.NewReaderSize(c, 512)
	for {
		typ, payload, err := readMsg(r)
		if err != nil {
			return err
		}
		switch typ {
		case 'E':
			return fmt.Errorf("-query: server error: %q", payload)
		case 'Z':
			return nil
		}
	}
}
