package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// listener is one LISTEN client. Its fields other than pc are written only by the
// goroutine that waits on pc (OnNotification runs inside WaitForNotification).
type listener struct {
	id      int
	ch      int // index into the run's channels
	channel string
	pc      *pgconn.PgConn
	streams []seqCheck // by notifier
	ended   []bool     // by notifier: its end marker arrived
}

// runListen spreads -clients listeners over -channels channels, has -notifiers clients
// send -notifies numbered notifications each (round robin over the channels), and checks
// that every listener got every notification of its channel once and in order.
func runListen(r *runner) (outcome, error) {
	run := strconv.FormatUint(rand.Uint64()&0xffffff, 16) // keeps concurrent runs apart
	chans := make([]string, r.o.channels)
	for i := range chans {
		chans[i] = fmt.Sprintf("pgload_%s_%d", run, i)
	}
	ls := connectAll(r, r.o.clients, func(i int) (*listener, error) { return r.dialListener(i, chans) })
	defer closeConns(r, ls, func(l *listener) *pgconn.PgConn { return l.pc })
	if len(ls) == 0 {
		if r.stop.Err() != nil {
			return outcome{}, nil
		}
		return outcome{}, errors.New("no listener could connect")
	}
	notifiers := make([]*pgx.Conn, r.o.notifiers)
	defer func() {
		for _, c := range notifiers {
			closePgx(c)
		}
	}()
	for j := range notifiers {
		c, err := r.dialPgx(r.o.mode)
		if err != nil {
			return outcome{}, fmt.Errorf("notifier: %w", err)
		}
		notifiers[j] = c
	}

	listenCtx, stopListening := context.WithCancel(r.hard)
	defer stopListening()
	var lwg sync.WaitGroup
	for _, l := range ls {
		lwg.Add(1)
		go func() {
			defer lwg.Done()
			l.wait(listenCtx, r)
		}()
	}

	ctx, cancel := r.phase()
	defer cancel()
	r.logf("%d notifiers sending %d notifications each to %d listeners on %d channels",
		len(notifiers), r.o.notifies, len(ls), len(chans))
	sent := make([][]int, len(notifiers))     // by notifier, channel: numbered ones acknowledged
	endSent := make([][]bool, len(notifiers)) // by notifier, channel: end marker acknowledged
	lat := make([]Hist, len(notifiers))       // NOTIFY round trips
	start := time.Now()
	var nwg sync.WaitGroup
	for j, c := range notifiers {
		nwg.Add(1)
		go func() {
			defer nwg.Done()
			sent[j], endSent[j] = r.notify(ctx, j, c, chans, &lat[j])
		}()
	}
	nwg.Wait()
	secs := time.Since(start).Seconds()

	drained := make(chan struct{})
	go func() { lwg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(r.o.drain):
		r.logf("listeners still waiting %s after the last NOTIFY; giving up on them", r.o.drain)
		stopListening()
		<-drained
	}
	delivery := time.Since(start).Seconds()

	var res seqResult
	expected := 0
	for _, l := range ls {
		for j := range notifiers {
			want := sent[j][l.ch]
			expected += want
			res.add(l.streams[j].result(want))
			if endSent[j][l.ch] && !l.ended[j] {
				res.Missing++ // the end marker is a notification too
			}
		}
	}
	var nl Hist
	for j := range lat {
		nl.Merge(&lat[j])
	}
	out := outcome{seconds: secs, extra: []field{
		{"listeners", len(ls)}, {"notifiers", len(notifiers)}, {"channels", len(chans)},
		{"expected_deliveries", expected}, {"deliveries", res.Received},
		{"deliveries_per_s", round3(float64(res.Received) / delivery)},
		{"missing", res.Missing}, {"duplicate", res.Duplicate},
		{"out_of_order", res.OutOfOrder}, {"unexpected", res.Unexpected},
		{"notify_p50_ms", round3(ms(nl.Quantile(0.5)))}, {"notify_p99_ms", round3(ms(nl.Quantile(0.99)))},
	}}
	if res.bad() > 0 {
		out.failures = append(out.failures, fmt.Sprintf("notifications: %d missing, %d duplicate, %d out of order, %d unexpected",
			res.Missing, res.Duplicate, res.OutOfOrder, res.Unexpected))
	}
	return out, nil
}

// dialListener connects listener i and LISTENs on its channel.
func (r *runner) dialListener(i int, chans []string) (*listener, error) {
	l := &listener{id: i, ch: i % len(chans), channel: chans[i%len(chans)],
		streams: make([]seqCheck, r.o.notifiers), ended: make([]bool, r.o.notifiers)}
	cfg := r.cfg.Config.Copy()
	cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) { l.receive(r, n) }
	ctx, cancel := context.WithTimeout(r.hard, r.o.connectTimeout)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := pc.Exec(ctx, "LISTEN "+l.channel).ReadAll(); err != nil {
		_ = pc.Close(ctx)
		return nil, fmt.Errorf("LISTEN: %w", err)
	}
	l.pc = pc
	return l, nil
}

// receive checks one notification and records its delivery latency.
func (l *listener) receive(r *runner, n *pgconn.Notification) {
	now := time.Now()
	if n.Channel != l.channel {
		r.stats.Wrong(fmt.Sprintf("listener %d on %s got a notification on %s", l.id, l.channel, n.Channel))
		return
	}
	p, err := parsePayload(n.Payload)
	if err == nil && p.notifier >= len(l.streams) {
		err = fmt.Errorf("no notifier %d", p.notifier)
	}
	if err != nil {
		r.stats.Wrong(fmt.Sprintf("listener %d: %v", l.id, err))
		return
	}
	if p.end {
		l.ended[p.notifier] = true
		return
	}
	l.streams[p.notifier].add(p.seq)
	r.stats.Latency(l.id, now.Sub(p.sent))
}

// wait receives notifications until every notifier's end marker arrived or ctx ends.
func (l *listener) wait(ctx context.Context, r *runner) {
	for !l.done() {
		if err := l.pc.WaitForNotification(ctx); err != nil {
			if ctx.Err() == nil {
				r.stats.Error("listen", err)
			}
			return
		}
	}
}

// done reports whether every notifier's end marker arrived.
func (l *listener) done() bool {
	for _, e := range l.ended {
		if !e {
			return false
		}
	}
	return true
}

// notify sends notifier j's numbered notifications until -notifies or ctx ends, round
// robin over chans and paced by -rate, then an end marker on every channel. It returns,
// by channel, how many numbered ones were acknowledged and whether the end marker was.
// A failed NOTIFY ends the numbered ones: whether it reached the listeners is unknown.
func (r *runner) notify(ctx context.Context, j int, c *pgx.Conn, chans []string, lat *Hist) ([]int, []bool) {
	sent, endSent := make([]int, len(chans)), make([]bool, len(chans))
	var interval time.Duration
	if r.o.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(r.o.notifiers) / r.o.rate)
	}
	next := time.Now()
	for i := 0; i < r.o.notifies && ctx.Err() == nil; i++ {
		if interval > 0 {
			select {
			case <-ctx.Done():
				continue
			case <-time.After(time.Until(next)):
			}
			next = next.Add(interval)
		}
		ch := i % len(chans)
		t0 := time.Now()
		if err := r.pgNotify(c, chans[ch], formatPayload(j, sent[ch], t0)); err != nil {
			r.stats.Error("notify", err)
			break
		}
		lat.Add(time.Since(t0))
		sent[ch]++
		r.stats.tx.Add(1)
	}
	for ch := range chans {
		if err := r.pgNotify(c, chans[ch], endPayload(j)); err != nil {
			r.stats.Error("notify end", err)
			continue
		}
		endSent[ch] = true
	}
	return sent, endSent
}

// pgNotify sends one notification on c.
func (r *runner) pgNotify(c *pgx.Conn, channel, payload string) error {
	ctx, cancel := r.op()
	defer cancel()
	_, err := c.Exec(ctx, "SELECT pg_notify($1, $2)", channel, payload)
	return err
}
