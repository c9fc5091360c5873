package proxy

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/pgmux/pgmux/protocol/pgerr"
	"github.com/pgmux/pgmux/proxy/metrics"
)

// TestKillAllTellsPastFullSockets: killAll (KILL db, a RELOAD removing a database, a
// shutdown) tells every client whose socket has room its FATAL, however many clients
// ahead of it have full ones, and is not held up long by those: 100 clients whose
// sockets take nothing (pipes nobody reads), then 20 that read. pgmux told at most 64
// clients at once, each waiting up to a second for its socket; the clients past the 64th
// were closed untold after killWait (200 ms).
func TestKillAllTellsPastFullSockets(t *testing.T) {
	log := zap.NewNop()
	srv := &Server{log: log}
	srv.metrics = metrics.New(metricsView{srv}) // a FATAL told is counted
	const full, room = 100, 20
	var ss []*Session
	got := make(chan error, room)
	for i := range full + room {
		ours, theirs := net.Pipe()
		t.Cleanup(func() { _ = ours.Close(); _ = theirs.Close() })
		ss = append(ss, newSession(srv, ours, uint64(i+1)))
		if i < full {
			continue // nobody reads: every write waits
		}
		go func() { got <- firstFatal(theirs) }()
	}
	start := time.Now()
	killAll(ss, func(*Session) *pgerr.Error {
		return pgerr.Fatal(pgerr.AdminShutdown, "database app was killed by an administrator (KILL)")
	})
	took := time.Since(start)
	t.Logf("%d full sockets and %d with room: killAll took %v", full, room, took)
	for i := range room {
		select {
		case err := <-got:
			require.NoError(t, err, "client %d of those that read", i)
		case <-time.After(10 * time.Second):
			t.Fatal("a client that reads got nothing in 10 s")
		}
	}
	// 100 full sockets at 64 at once are two rounds of killTellWait; 3 s leaves room for a
	// loaded machine, and is far from 100 seconds one after another.
	require.Less(t, took, 3*time.Second)
}

// firstFatal reads c until its first message and checks that it is the FATAL 57P01.
func firstFatal(c net.Conn) error {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	rd := bufio.NewReader(c)
	var h [5]byte
	if _, err := io.ReadFull(rd, h[:]); err != nil {
		return err
	}
	n := int(h[1])<<24 | int(h[2])<<16 | int(h[3])<<8 | int(h[4])
	body := make([]byte, n-4)
	if _, err := io.ReadFull(rd, body); err != nil {
		return err
	}
	e := &pgproto3.ErrorResponse{}
	if h[0] != 'E' {
		return io.ErrUnexpectedEOF
	}
	if err := e.Decode(body); err != nil {
		return err
	}
	if e.Severity != "FATAL" || e.Code != pgerr.AdminShutdown {
		return &pgerr.Error{Severity: e.Severity, Code: e.Code, Message: e.Message}
	}
	return nil
}
