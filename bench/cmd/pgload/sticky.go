package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// stickyKinds are the session-sticky sequences a sticky client runs in turn.
var stickyKinds = []string{"advisory_lock", "set_reset", "temp_table", "listen"}

// stickyClient is one client's state between its steps; only its own goroutine uses it.
type stickyClient struct {
	synced bool  // v is the row's value in pgload_kv
	v      int64 // plain clients: the value of their row
	iter   int   // sticky clients: sequences run
}

// runSticky mixes short transactions with session-sticky clients. Plain client i owns row
// i of pgload_kv (reset to 0 at the start) and increments it in a transaction that reads
// it back, so a lost or doubled commit shows up as a wrong value. The first -sticky-ratio
// of the clients (at least one when the ratio is not 0) run the stickyKinds in turn, each
// checking in later statements that the session state of the first one is there.
func runSticky(r *runner) (outcome, error) {
	if err := r.setupKV(); err != nil {
		return outcome{}, err
	}
	conns, err := r.connectPgx(r.o.clients, r.o.mode)
	if err != nil {
		return outcome{}, err
	}
	nSticky := int(math.Round(r.o.stickyRatio * float64(len(conns))))
	if r.o.stickyRatio > 0 {
		nSticky = max(nSticky, 1)
	}
	run := strconv.FormatUint(rand.Uint64()&0xffffff, 16)
	clients := make([]stickyClient, len(conns))
	var plain atomic.Int64
	kinds := make([]atomic.Int64, len(stickyKinds))
	ctx, cancel := r.phase()
	defer cancel()
	secs := r.drive(ctx, conns, r.o.mode, func(ctx context.Context, id int, c *pgx.Conn) error {
		st := &clients[id]
		if id >= nSticky {
			err := plainTx(ctx, c, id, st)
			if err == nil {
				plain.Add(1)
			}
			return err
		}
		k := st.iter % len(stickyKinds)
		st.iter++
		err := stickySeq(ctx, c, stickyKinds[k], id, st.iter, run)
		if err == nil {
			kinds[k].Add(1)
		}
		return err
	})
	out := outcome{seconds: secs, extra: []field{{"exec_mode", r.o.execMode},
		{"sticky_clients", nSticky}, {"plain_tx", plain.Load()}}}
	for k, name := range stickyKinds {
		out.extra = append(out.extra, field{"sticky_" + name, kinds[k].Load()})
	}
	return out, nil
}

// setupKV creates pgload_kv if needed and gives every client a row with value 0.
func (r *runner) setupKV() error {
	c, err := r.dialPgx(pgx.QueryExecModeExec)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	defer closePgx(c)
	ctx, cancel := r.op()
	defer cancel()
	if _, err := c.Exec(ctx, `CREATE TABLE IF NOT EXISTS pgload_kv (k int PRIMARY KEY, v bigint NOT NULL)`); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if _, err := c.Exec(ctx, `INSERT INTO pgload_kv SELECT g, 0 FROM generate_series(0, $1::int - 1) g
		ON CONFLICT (k) DO UPDATE SET v = 0`, r.o.clients); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	return nil
}

// plainTx increments client id's row in a transaction and checks the value against the
// one the client keeps. After a failure the client reads the row again first: the commit
// may or may not have happened.
func plainTx(ctx context.Context, c *pgx.Conn, id int, st *stickyClient) error {
	if !st.synced {
		if err := c.QueryRow(ctx, "SELECT v FROM pgload_kv WHERE k = $1", id).Scan(&st.v); err != nil {
			return err
		}
		st.synced = true
	}
	var updated, read int64
	err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "UPDATE pgload_kv SET v = v + 1 WHERE k = $1 RETURNING v", id).Scan(&updated); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT v FROM pgload_kv WHERE k = $1", id).Scan(&read)
	})
	if err != nil {
		st.synced = false
		return err
	}
	st.v++
	if updated != st.v || read != st.v {
		want := st.v
		st.v = updated
		return wrongf("row %d: UPDATE returned %d and SELECT %d, want %d", id, updated, read, want)
	}
	return nil
}

// stickySeq runs one session-sticky sequence of the given kind. After a failure it tries
// to undo what the sequence left in the session.
func stickySeq(ctx context.Context, c *pgx.Conn, kind string, id, iter int, run string) error {
	var err error
	switch kind {
	case "advisory_lock":
		err = advisoryLock(ctx, c, int64(0x70670000+id))
	case "set_reset":
		err = setReset(ctx, c, fmt.Sprintf("c%d-%d", id, iter))
	case "temp_table":
		err = tempTable(ctx, c, iter)
	case "listen":
		err = listenSelf(ctx, c, fmt.Sprintf("pgload_%s_s%d", run, id), iter)
	}
	if err != nil && !c.IsClosed() {
		undo, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = c.Exec(undo, "SELECT pg_advisory_unlock_all(); RESET pgload.mark; DROP TABLE IF EXISTS pgload_tmp; UNLISTEN *",
			pgx.QueryExecModeSimpleProtocol)
	}
	return err
}

// advisoryLock takes a session advisory lock, checks in the next statement that this
// session holds it, and releases it.
func advisoryLock(ctx context.Context, c *pgx.Conn, key int64) error {
	if _, err := c.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		return err
	}
	var held int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
		AND pid = pg_backend_pid() AND granted AND classid = 0 AND objid = $1::bigint::oid AND objsubid = 1`,
		key).Scan(&held); err != nil {
		return err
	}
	var released bool
	if err := c.QueryRow(ctx, "SELECT pg_advisory_unlock($1)", key).Scan(&released); err != nil {
		return err
	}
	if held != 1 || !released {
		return wrongf("advisory lock %d: held by this session %d times after locking, unlock returned %t", key, held, released)
	}
	return nil
}

// setReset sets a custom setting, reads it back, resets it and checks it is gone.
func setReset(ctx context.Context, c *pgx.Conn, mark string) error {
	simple := pgx.QueryExecModeSimpleProtocol // SET takes no parameters; the text varies
	if _, err := c.Exec(ctx, "SET pgload.mark = '"+mark+"'", simple); err != nil {
		return err
	}
	var got, after string
	if err := c.QueryRow(ctx, "SHOW pgload.mark", simple).Scan(&got); err != nil {
		return err
	}
	if _, err := c.Exec(ctx, "RESET pgload.mark", simple); err != nil {
		return err
	}
	if err := c.QueryRow(ctx, "SELECT coalesce(current_setting('pgload.mark', true), '')").Scan(&after); err != nil {
		return err
	}
	if got != mark || after != "" {
		return wrongf("SET pgload.mark = %q: SHOW returned %q, after RESET %q", mark, got, after)
	}
	return nil
}

// tempTable creates a temporary table, fills and reads it in later statements, drops it.
func tempTable(ctx context.Context, c *pgx.Conn, iter int) error {
	if _, err := c.Exec(ctx, "CREATE TEMP TABLE pgload_tmp (v int)"); err != nil {
		return err
	}
	if _, err := c.Exec(ctx, "INSERT INTO pgload_tmp VALUES ($1)", iter); err != nil {
		return err
	}
	var n, sum int
	if err := c.QueryRow(ctx, "SELECT count(*), coalesce(sum(v), 0) FROM pgload_tmp").Scan(&n, &sum); err != nil {
		return err
	}
	if _, err := c.Exec(ctx, "DROP TABLE pgload_tmp"); err != nil {
		return err
	}
	if n != 1 || sum != iter {
		return wrongf("temp table: %d rows summing to %d, want 1 row of %d", n, sum, iter)
	}
	return nil
}

// listenSelf LISTENs, notifies itself, waits for the notification and UNLISTENs.
// Notifications of earlier sequences that failed half way are skipped.
func listenSelf(ctx context.Context, c *pgx.Conn, channel string, iter int) error {
	if _, err := c.Exec(ctx, "LISTEN "+channel); err != nil {
		return err
	}
	if _, err := c.Exec(ctx, "SELECT pg_notify($1, $2)", channel, strconv.Itoa(iter)); err != nil {
		return err
	}
	for range 100 { // bounded: a stale notification per earlier failed sequence at most
		n, err := c.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		got, perr := strconv.Atoi(n.Payload)
		if n.Channel == channel && perr == nil && got < iter {
			continue
		}
		if _, err := c.Exec(ctx, "UNLISTEN "+channel); err != nil {
			return err
		}
		if n.Channel != channel || got != iter {
			return wrongf("LISTEN %s: got %q on %s, want %d", channel, n.Payload, n.Channel, iter)
		}
		return nil
	}
	return wrongf("LISTEN %s: only stale notifications", channel)
}
