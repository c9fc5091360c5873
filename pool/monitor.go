package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/protocol/wire"
)

// checkQuery asks a server, in one round trip, whether it is in recovery, its WAL
// position (the insert position on a primary, never behind a completed commit's record;
// the replayed one on a standby), the server's own measure of a standby's replay lag (0
// when it has replayed all it received, else the age of the last transaction it
// replayed: used only while no primary's position is recorded, walhist.go) and a
// primary's flushed WAL position (what standbys' lag is measured against).
const checkQuery = `SELECT pg_is_in_recovery(),
 CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END,
 CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
  ELSE floor(extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000) END,
 CASE WHEN NOT pg_is_in_recovery() THEN pg_current_wal_flush_lsn() END`

// Watch starts one checker per host, logging in with what login returns (aimed at each
// host in turn); timeout bounds each connect and check. Later calls do nothing.
func (cl *Cluster) Watch(login func() *Target, timeout time.Duration) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.login != nil || cl.closed {
		return
	}
	if timeout <= 0 || timeout > 5*time.Second {
		timeout = 5 * time.Second
	}
	cl.login, cl.timeout = login, timeout
	for _, h := range cl.hosts {
		cl.wg.Add(1)
		go h.watch()
	}
}

// Close stops the checkers.
func (cl *Cluster) Close() {
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		return
	}
	cl.closed = true
	close(cl.stop)
	cl.mu.Unlock()
	// A read-your-writes fetch or wait that found the cluster open has registered its
	// goroutine before the Wait; later ones see it shut.
	cl.lsnMu.Lock()
	cl.lsnShut = true
	cl.lsnMu.Unlock()
	for _, h := range cl.hosts {
		h.mu.Lock()
		h.shut = true
		h.mu.Unlock()
	}
	cl.wg.Wait()
	if cl.lsnConn != nil {
		cl.lsnConn.nc.Close()
	}
	for _, h := range cl.hosts {
		if h.pollConn != nil {
			h.pollConn.nc.Close()
		}
	}
}

// checkConn is a checker's own server connection.
//
// Owner: one goroutine at a time: a host's checker loop (watch), a standby's replay
// poller (Host.pollConn) or the running WAL-position fetcher (Cluster.lsnConn); Close
// closes the last two only after those goroutines have stopped.
type checkConn struct {
	nc net.Conn
	rd *wire.Reader
}

// watch is a host's checker loop: check, then wait for the interval (the fast one while
// the cluster has no reachable primary) or a kick.
func (h *Host) watch() {
	cl := h.cl
	defer cl.wg.Done()
	var cc *checkConn
	defer func() {
		if cc != nil {
			cc.nc.Close()
		}
	}()
	for {
		cc = h.check(cc)
		wait := cl.opts.Interval
		if !cl.HasPrimary() {
			wait = cl.opts.FastInterval
		}
		t := time.NewTimer(wait)
		select {
		case <-cl.stop:
			t.Stop()
			return
		case <-h.kick:
			t.Stop()
		case <-t.C:
		}
	}
}

// check runs one check on cc (connecting first when nil) and returns the connection to
// keep, nil after a failure.
func (h *Host) check(cc *checkConn) *checkConn {
	cl := h.cl
	cl.mu.Lock()
	login, timeout := cl.login, cl.timeout
	cl.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var err error
	if cc == nil {
		if cc, err = h.connect(ctx, login().at(h)); err != nil {
			h.noteDown(err)
			return nil
		}
	}
	start := time.Now()
	row, err := cc.queryRow(ctx, checkQuery)
	if err == nil {
		err = h.noteCheck(row, start)
	}
	if err != nil {
		cc.nc.Close()
		var pe *pgerr.Error
		if errors.As(err, &pe) && pe.Code != pgerr.CannotConnectNow && pe.Code != pgerr.AdminShutdown {
			// The server answered: it is up, but the check cannot run (permissions?).
			cl.log.Warn("server role check failed", zap.Stringer("host", h.Endpoint), zap.Error(err))
			h.mu.Lock()
			h.lastErr = err.Error()
			h.mu.Unlock()
			return nil
		}
		h.noteDown(err)
		return nil
	}
	return cc
}

// connect logs in to the host for checks; the role it reports at login counts at once.
func (h *Host) connect(ctx context.Context, t *Target) (*checkConn, error) {
	network, addr := t.Network()
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("connect to server %s: %w", addr, err)
	}
	nc, rd, _, _, params, err := login(ctx, nc, t)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if role, _ := AttrsAny.accept(params); role != RoleUnknown {
		h.noteRole(role)
	}
	return &checkConn{nc: nc, rd: rd}, nil
}

// queryRow runs sql and returns its first row's columns as text ("" for NULL).
func (cc *checkConn) queryRow(ctx context.Context, sql string) ([]string, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = cc.nc.SetDeadline(dl)
	}
	if _, err := cc.nc.Write(wire.Query(nil, sql)); err != nil {
		return nil, err
	}
	var row []string
	var qerr error
	for {
		typ, n, err := cc.rd.Next()
		if err != nil {
			return nil, err
		}
		m, err := cc.rd.Message(n)
		if err != nil {
			return nil, err
		}
		switch typ {
		case 'D':
			if row == nil {
				row, err = dataRow(wire.Body(m))
				if err != nil {
					return nil, err
				}
			}
		case 'E':
			qerr, _ = pgerr.Parse(wire.Body(m))
		case 'Z':
			cc.rd.Release()
			if qerr == nil && row == nil {
				qerr = errors.New("check query returned no row")
			}
			return row, qerr
		}
	}
}

// dataRow decodes a DataRow's columns as text.
func dataRow(b []byte) ([]string, error) {
	cols, b, err := wire.Int16(b)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, cols)
	for range cols {
		var l int32
		if l, b, err = wire.Int32(b); err != nil {
			return nil, err
		}
		if l < 0 {
			out = append(out, "")
			continue
		}
		if int(l) > len(b) {
			return nil, wire.ErrMalformed
		}
		out = append(out, string(b[:l]))
		b = b[l:]
	}
	return out, nil
}

// noteCheck records a check's row: in recovery, WAL position, the server's replay lag,
// flushed position; sent is when the check query was sent. A primary's flushed position
// goes into the cluster's history; a standby's lag is measured against it (walhist.go).
func (h *Host) noteCheck(row []string, sent time.Time) error {
	if len(row) < 3 {
		return fmt.Errorf("check query returned %d columns", len(row))
	}
	role := RolePrimary
	if row[0] == "t" {
		role = RoleStandby
	}
	lsn, _ := ParseLSN(row[1])
	lag := int64(-1)
	if row[2] != "" {
		if v, err := strconv.ParseFloat(row[2], 64); err == nil {
			lag = int64(v)
		}
	}
	var flushed uint64
	if len(row) > 3 && row[3] != "" {
		flushed, _ = ParseLSN(row[3])
	}
	h.noteRole(role)
	now := time.Now()
	if d, ok := h.cl.noteWAL(h, role, lsn, flushed, sent, now); ok {
		lag = d.Milliseconds()
	}
	h.mu.Lock()
	h.checked, h.lsn, h.flushed, h.lagMs, h.lastErr, h.lsnAsked = now, lsn, flushed, lag, "", sent
	h.mu.Unlock()
	return nil
}

// ParseLSN parses PostgreSQL's text form of a WAL position, "16/B374D848".
func ParseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("malformed LSN %q", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed LSN %q", s)
	}
	return h<<32 | l, nil
}
