// Command soak drives mixed load through pgmux for a while, with client kills, PostgreSQL
// restarts and a pgmux reload, and reports what went wrong. Every client checks its own
// results: rows are tagged with the client's id and read back. bench/soak.sh sets it up.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

type opts struct {
	mux, direct, admin string
	seconds            int
	clients            int
	pgmuxPID           int
	restart            string
	kinds              string
}

// began is when the soak started: failures it prints carry the seconds since.
var began = time.Now()

// A listen client's step, so that a wrong result can say where the client's last kill
// found it: a kill while its pg_notify was in flight leaves the notification's commit to
// race the next connection's LISTEN (as on a direct connection), a later one does not.
var (
	steps      []atomic.Int32 // per client: the listen step it is in
	killedStep []atomic.Int32 // per client: the step its last kill found (0: none)
	// unanswered holds a listen client's pg_notify payloads whose answers it never read
	// (its connection was killed or failed meanwhile; the last 8). PostgreSQL may still
	// commit such a NOTIFY, and after the client's next LISTEN: then it is delivered to a
	// later connection, as it would be without pgmux. The check skips those instead of
	// calling them wrong. Only the client's own goroutine touches its entry.
	unanswered [][]string
	late       atomic.Int64 // notifications skipped that way
	// gapTold is set when pgmux tells a listen client's connection that notifications may
	// have been missed (its WARNING after the shared listener connection was lost and
	// listened again, SQLSTATE 01000). A notification that never comes after that is a
	// loss the client was told of, counted apart from a silent one.
	gapTold []atomic.Bool
)

// gapNotice is the start of pgmux's notice that a listener connection was lost.
const gapNotice = "pgmux: notifications may have been missed"

var stepNames = []string{"none", "transaction", "LISTEN", "pg_notify", "waiting", "UNLISTEN", "read back"}

type stats struct {
	tx, wrong atomic.Int64
	mu        sync.Mutex
	errs      map[string]int
}

func (s *stats) fail(kind string) {
	s.mu.Lock()
	s.errs[kind]++
	s.mu.Unlock()
}

func main() {
	var o opts
	flag.StringVar(&o.mux, "mux", "", "libpq conninfo of the app database through pgmux")
	flag.StringVar(&o.direct, "direct", "", "libpq conninfo of the same database, as a superuser, directly")
	flag.StringVar(&o.admin, "admin", "", "libpq conninfo of pgmux's admin console")
	flag.IntVar(&o.seconds, "seconds", envInt("SOAK_SECONDS", 600), "duration (SOAK_SECONDS)")
	flag.IntVar(&o.clients, "clients", 40, "concurrent clients")
	flag.IntVar(&o.pgmuxPID, "pgmux-pid", 0, "pgmux's PID: SIGHUP for the reload, RSS")
	flag.StringVar(&o.restart, "restart", "", "shell command that restarts PostgreSQL (pg_ctl restart -m fast)")
	flag.StringVar(&o.kinds, "kinds", envStr("SOAK_KINDS", "simple,extended,prepared,sticky,listen"), "comma-separated client kinds, assigned round-robin (SOAK_KINDS)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func envStr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}

func run(o opts) error {
	ctx := context.Background()
	direct, err := pgx.Connect(ctx, o.direct)
	if err != nil {
		return fmt.Errorf("direct connection: %w", err)
	}
	if _, err := direct.Exec(ctx, `DROP TABLE IF EXISTS soak; CREATE UNLOGGED TABLE soak (client int, seq int, val text, PRIMARY KEY (client, seq));
		GRANT ALL ON soak TO PUBLIC`); err != nil {
		return err
	}
	direct.Close(ctx)

	st := &stats{errs: map[string]int{}}
	deadline := time.Now().Add(time.Duration(o.seconds) * time.Second)
	kinds := strings.Split(o.kinds, ",")
	for _, k := range kinds {
		switch k {
		case "simple", "extended", "prepared", "sticky", "listen":
		default:
			return fmt.Errorf("unknown client kind %q (simple, extended, prepared, sticky, listen)", k)
		}
	}
	var wg sync.WaitGroup
	live := make([]atomic.Pointer[pgx.Conn], o.clients)
	steps = make([]atomic.Int32, o.clients)
	killedStep = make([]atomic.Int32, o.clients)
	gapTold = make([]atomic.Bool, o.clients)
	unanswered = make([][]string, o.clients)
	for i := range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client(o, i, kinds[i%len(kinds)], deadline, st, &live[i])
		}()
	}
	// Chaos: random client kills all along; restarts at 1/3 and 2/3; a reload at 1/2.
	stop := make(chan struct{})
	var chaos sync.WaitGroup
	chaos.Add(1)
	go func() {
		defer chaos.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(500+rand.IntN(1500)) * time.Millisecond):
			}
			i := rand.IntN(o.clients)
			if c := live[i].Load(); c != nil {
				killedStep[i].Store(steps[i].Load())
				_ = c.PgConn().Conn().Close() // the client vanishes: no Terminate
				st.fail("killed by soak (expected)")
			}
		}
	}()
	total := time.Duration(o.seconds) * time.Second
	warm := min(10*time.Second, total/10)
	time.Sleep(warm)
	rss0 := rssKB(o.pgmuxPID)
	events := []struct {
		at   time.Duration
		name string
		do   func() error
	}{
		{total / 3, "postgres restart (fast)", func() error { return sh(o.restart) }},
		{total / 2, "pgmux RELOAD (SIGHUP)", func() error { return syscall.Kill(o.pgmuxPID, syscall.SIGHUP) }},
		{2 * total / 3, "postgres restart (fast)", func() error { return sh(o.restart) }},
	}
	start := time.Now().Add(-warm)
	for _, ev := range events {
		time.Sleep(time.Until(start.Add(ev.at)))
		t0 := time.Now()
		err := ev.do()
		fmt.Printf("[%5.1fs] %s: %v (took %v)\n", time.Since(start).Seconds(), ev.name, errText(err), time.Since(t0).Round(time.Millisecond))
	}
	wg.Wait()
	close(stop)
	chaos.Wait()
	time.Sleep(3 * time.Second) // let pgmux settle: reset and return servers
	rss1 := rssKB(o.pgmuxPID)
	report(o, st, rss0, rss1)
	return nil
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func sh(cmd string) error {
	if cmd == "" {
		return errors.New("no -restart command")
	}
	out, err := exec.Command("/bin/sh", "-c", cmd).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// client runs one kind of work until the deadline, reconnecting after errors.
func client(o opts, id int, kind string, deadline time.Time, st *stats, live *atomic.Pointer[pgx.Conn]) {
	var conn *pgx.Conn
	seq := 0
	for time.Now().Before(deadline) {
		if conn == nil {
			c, err := dial(o.mux, kind, id)
			if err != nil {
				st.fail("connect: " + classify(err))
				time.Sleep(200 * time.Millisecond)
				continue
			}
			conn = c
			live.Store(c)
			if kind == "sticky" {
				if err := stickySetup(conn, id); err != nil {
					st.fail(kind + ": " + classify(err))
					drop(&conn, live)
					continue
				}
			}
		}
		seq++
		ok, err := work(conn, id, seq, kind)
		if err != nil {
			why := classify(err)
			st.fail(kind + ": " + why)
			if why == "timeout" {
				fmt.Printf("[%5.1fs] %s client %d seq %d: %v\n", time.Since(began).Seconds(), kind, id, seq, err)
			}
			drop(&conn, live)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !ok {
			st.wrong.Add(1)
			fmt.Printf("[%5.1fs] WRONG RESULT: client %d (%s) seq %d (its last kill found it at step: %s)\n",
				time.Since(began).Seconds(), id, kind, seq, stepNames[killedStep[id].Load()])
		}
		st.tx.Add(1)
	}
	drop(&conn, live)
}

func dial(conninfo, kind string, id int) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil {
		return nil, err
	}
	if kind == "listen" {
		cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
			if n.Code == "01000" && strings.HasPrefix(n.Message, gapNotice) {
				gapTold[id].Store(true)
			}
		}
	}
	switch kind {
	case "simple":
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	case "extended", "sticky", "listen":
		cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	case "prepared":
		cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

func drop(conn **pgx.Conn, live *atomic.Pointer[pgx.Conn]) {
	live.Store(nil)
	if *conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = (*conn).Close(ctx)
		cancel()
		*conn = nil
	}
}

// stickySetup creates session state that pins the client to its server in transaction mode.
func stickySetup(c *pgx.Conn, id int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := c.Exec(ctx, fmt.Sprintf(`SELECT pg_advisory_lock(%d); CREATE TEMP TABLE IF NOT EXISTS mine (seq int);
		SET application_name = 'soak-%d'`, 100000+id, id))
	return err
}

// work runs one transaction and checks that what it reads back is what it wrote.
func work(c *pgx.Conn, id, seq int, kind string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	val := fmt.Sprintf("c%d-s%d-%d", id, seq, rand.Int64())
	step := func(n int32) { steps[id].Store(n) }
	defer step(0)
	step(1)
	tx, err := c.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, "INSERT INTO soak VALUES ($1, $2, $3)", id, seq, val); err != nil {
		return false, err
	}
	var got string
	if err := tx.QueryRow(ctx, "SELECT val FROM soak WHERE client = $1 AND seq = $2", id, seq).Scan(&got); err != nil {
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, err
	}
	ok := got == val
	switch kind {
	case "sticky":
		var app string
		var n int
		if _, err := c.Exec(ctx, "INSERT INTO mine VALUES ($1)", seq); err != nil {
			return false, err
		}
		if err := c.QueryRow(ctx, "SELECT (SELECT count(*) FROM mine WHERE seq = $1), current_setting('application_name')", seq).Scan(&n, &app); err != nil {
			return false, err
		}
		if app != fmt.Sprintf("soak-%d", id) || n <= 0 {
			fmt.Printf("sticky client %d: application_name %q, %d rows in its temp table\n", id, app, n)
			ok = false
		}
	case "listen":
		ch := fmt.Sprintf("soak_%d", id)
		step(2)
		gapTold[id].Store(false) // a gap told before this LISTEN does not cover its notification
		if _, err := c.Exec(ctx, "LISTEN "+ch); err != nil {
			return false, err
		}
		step(3)
		unanswered[id] = append(unanswered[id], val)
		if _, err := c.Exec(ctx, "SELECT pg_notify($1, $2)", ch, val); err != nil {
			if len(unanswered[id]) > 8 {
				unanswered[id] = unanswered[id][1:]
			}
			return false, err
		}
		unanswered[id] = unanswered[id][:len(unanswered[id])-1] // answered
		step(4)
		n, err := c.WaitForNotification(ctx)
		if err != nil {
			if gapTold[id].Load() && errors.Is(err, context.DeadlineExceeded) {
				return false, errGapTold
			}
			return false, err
		}
		for k := 0; k < len(unanswered[id]); {
			if n.Payload != unanswered[id][k] {
				k++
				continue
			}
			late.Add(1) // an earlier connection's NOTIFY, committed after this LISTEN
			unanswered[id] = append(unanswered[id][:k], unanswered[id][k+1:]...)
			if n, err = c.WaitForNotification(ctx); err != nil {
				return false, err
			}
			k = 0
		}

		if n.Payload != val {
			fmt.Printf("listen client %d: notification %q on %q, want %q\n", id, n.Payload, n.Channel, val)
			ok = false
		}
		step(5)
		if _, err := c.Exec(ctx, "UNLISTEN "+ch); err != nil {
			return false, err
		}
		step(6)
	}
	// Read back outside the transaction, through whichever server comes next.
	if err := c.QueryRow(ctx, "SELECT val FROM soak WHERE client = $1 AND seq = $2", id, seq).Scan(&got); err != nil {
		return false, err
	}
	return ok && got == val, nil
}

// errGapTold: a listen client's notification never came, and pgmux had told the client
// that notifications may have been missed (gapTold).
var errGapTold = errors.New("notification lost while pgmux's listener connection was down; the client was told")

func classify(err error) string {
	if errors.Is(err, errGapTold) {
		return "notification lost in a listener gap, told (expected)"
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		msg := pe.Message
		if len(msg) > 60 {
			msg = msg[:60]
		}
		return pe.Code + " " + msg
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "use of closed network connection"), strings.Contains(s, "closed pool"), strings.Contains(s, "conn closed"):
		return "connection closed"
	case strings.Contains(s, "unexpected EOF"), strings.Contains(s, "EOF"):
		return "EOF"
	case strings.Contains(s, "connection reset"):
		return "connection reset"
	case strings.Contains(s, "broken pipe"):
		return "broken pipe"
	case strings.Contains(s, "timeout"), strings.Contains(s, "deadline"):
		return "timeout"
	}
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

func rssKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	return 0
}

func report(o opts, st *stats, rss0, rss1 int) {
	ctx := context.Background()
	fmt.Printf("\n== soak report (%ds, %d clients) ==\n", o.seconds, o.clients)
	fmt.Printf("transactions run:    %d\n", st.tx.Load())
	fmt.Printf("wrong results:       %d\n", st.wrong.Load())
	fmt.Printf("late notifications:  %d (a killed connection's unanswered pg_notify, delivered to a later connection of its client)\n", late.Load())
	fmt.Println("errors by kind:")
	var keys []string
	for k := range st.errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("  %6d  %s\n", st.errs[k], k)
	}
	muxServers := -1
	if admin, err := pgx.Connect(ctx, o.admin+" default_query_exec_mode=simple_protocol"); err == nil {
		rows, err := admin.Query(ctx, "SHOW SERVERS")
		if err == nil {
			muxServers = 0
			for rows.Next() {
				muxServers++
			}
			rows.Close()
		}
		admin.Close(ctx)
	} else {
		fmt.Println("admin console:", err)
	}
	pgBackends, idleInTx := -1, -1
	if d, err := pgx.Connect(ctx, o.direct); err == nil {
		_ = d.QueryRow(ctx, `SELECT count(*) FILTER (WHERE usename = 'app'),
			count(*) FILTER (WHERE usename = 'app' AND state LIKE 'idle in transaction%')
			FROM pg_stat_activity WHERE backend_type = 'client backend'`).Scan(&pgBackends, &idleInTx)
		d.Close(ctx)
	}
	fmt.Printf("server connections:  pgmux SHOW SERVERS %d, PostgreSQL backends of app %d, idle in transaction %d\n",
		muxServers, pgBackends, idleInTx)
	leaked := pgBackends - muxServers
	if muxServers < 0 || pgBackends < 0 {
		leaked = -1
	}
	fmt.Printf("leaked server conns: %d (backends PostgreSQL has that pgmux does not know)\n", leaked)
	fmt.Printf("pgmux RSS:           %d kB after warm-up, %d kB at the end\n", rss0, rss1)
}
