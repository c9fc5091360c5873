// Command relayeval is a minimal transaction-pooling relay for PostgreSQL with three
// interchangeable I/O drivers over one protocol core, built to measure what an event
// loop buys in Go before pgmux's proxy is rewritten around one (issue 14):
//
//	goroutine  a goroutine per client and per server connection over net.Conn (pgmux today)
//	epoll      -loops event loops (default GOMAXPROCS) over raw non-blocking sockets
//	epoll-park the same, each loop's epoll descriptor parked in Go's netpoller when idle
//	epoll-raw  the same as epoll, socket reads and writes with RawSyscall
//	gnet       github.com/panjf2000/gnet/v2 event loops, server connections enrolled in them
//
// The relay answers a client's startup itself (AuthenticationOk, the first server
// connection's ParameterStatus, BackendKeyData, ReadyForQuery: no client authentication),
// leases a server at the first message of a request, forwards whole messages raw and
// releases the server at the ReadyForQuery 'I' that settles the last Query or Sync
// forwarded; waiters queue FIFO. Server connections are logged in with pgconn (password
// from PGPASSWORD) and hijacked. bench/relayeval.sh measures it beside PgBouncer and pgmux.
//
//	relayeval -listen 127.0.0.1:6432 -server 'host=127.0.0.1 port=5432 user=postgres dbname=postgres' -driver epoll
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

// relay is what every driver shares: the greeting, the pool size and how to dial a
// replacement server.
type relay struct {
	greet    greeting
	poolSize int
	dial     dialer
	ctx      context.Context
}

// refill dials a replacement server connection (retrying) and gives it to add.
func (r *relay) refill(add func(net.Conn)) {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		c, _, err := r.dial.dial(r.ctx)
		if err == nil {
			add(c)
			return
		}
		if r.ctx.Err() != nil {
			return
		}
		log.Printf("refill: %v", err)
		time.Sleep(delay)
	}
}

// driver runs the relay's I/O until ctx ends.
type driver interface {
	start(ctx context.Context, ln net.Listener, servers []net.Conn) error
}

func newDriver(name string, r *relay, loops int) (driver, error) {
	switch name {
	case "goroutine":
		return &goDriver{cfg: r}, nil
	case "epoll":
		return newEpollDriver(r, loops, false, false)
	case "epoll-park":
		return newEpollDriver(r, loops, true, false)
	case "epoll-raw":
		return newEpollDriver(r, loops, false, true)
	case "gnet":
		return &gnetDriver{cfg: r, loops: loops}, nil
	}
	return nil, fmt.Errorf("unknown driver %q (goroutine, epoll, epoll-park, epoll-raw, gnet)", name)
}

func main() {
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	if err := run(os.Args[1:]); err != nil {
		log.Fatal(err)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("relayeval", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:6432", "address to accept clients on")
	server := fs.String("server", "host=127.0.0.1 port=5432 user=postgres dbname=postgres sslmode=disable",
		"pgconn connection string of the server (password from PGPASSWORD)")
	drv := fs.String("driver", "epoll", "I/O driver: goroutine, epoll, epoll-park, epoll-raw, gnet")
	pool := fs.Int("pool", 20, "server connections")
	loops := fs.Int("loops", 0, "event loops (epoll, gnet); 0: GOMAXPROCS")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pool < 1 {
		return errors.New("-pool must be at least 1")
	}
	if *loops <= 0 {
		*loops = runtime.GOMAXPROCS(0)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	addr, err := serve(ctx, *drv, *listen, *server, *pool, *loops)
	if err != nil {
		return err
	}
	log.Printf("relayeval %s (%d loops, GOMAXPROCS %d) on %s, pool %d", *drv, *loops, runtime.GOMAXPROCS(0), addr, *pool)
	<-ctx.Done()
	return nil
}

// serve logs the pool's servers in, starts driver name on listen and returns the address
// it listens on; the relay runs until ctx ends.
func serve(ctx context.Context, name, listen, connString string, poolSize, loops int) (string, error) {
	r := &relay{poolSize: poolSize, dial: dialer{connString: connString}, ctx: ctx}
	servers := make([]net.Conn, 0, poolSize)
	for i := 0; i < poolSize; i++ {
		c, params, err := r.dial.dial(ctx)
		if err != nil {
			for _, s := range servers {
				_ = s.Close()
			}
			return "", err
		}
		if i == 0 {
			r.greet = newGreeting(params)
		}
		servers = append(servers, c)
	}
	d, err := newDriver(name, r, loops)
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return "", err
	}
	if err := d.start(ctx, ln, servers); err != nil {
		_ = ln.Close()
		return "", err
	}
	return ln.Addr().String(), nil
}
