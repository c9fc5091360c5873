//go:build linux

package proxy

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/protocol/wire"
	"github.com/pgmux/pgmux/proxy/link"
	"github.com/pgmux/pgmux/proxy/metrics"
)

// tcpPair returns both ends of a loopback TCP connection: the one pgmux would accept and
// the client's.
func tcpPair(t *testing.T) (accepted, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	accepted, err = ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	return accepted, client
}

func parkingSession(t *testing.T) (*Session, net.Conn) {
	t.Helper()
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	log := zap.NewNop()
	srv := &Server{log: log, loops: []*parker{newParker(log, done)}}
	srv.metrics = metrics.New(metricsView{srv}) // a FATAL told is counted
	require.NotNil(t, srv.loops[0])
	accepted, client := tcpPair(t)
	s := newSession(srv, accepted, 1)
	require.True(t, s.canPark())
	return s, client
}

// A parked client keeps its socket's descriptor and nothing of its net.Conn, which is
// what an idle client costs most (the netFD, its addresses, the runtime's poll
// descriptor). The socket stays open: the client's addresses are still known, a FATAL
// still reaches it, and the session talks to it again once resumed.
func TestParkedClientKeepsOnlyItsDescriptor(t *testing.T) {
	s, client := parkingSession(t)
	accepted := s.nc
	require.True(t, s.park())
	require.IsType(t, detachedConn{}, s.nc)
	require.GreaterOrEqual(t, s.rawFD, int32(0))
	_, err := accepted.Write([]byte("x"))
	require.ErrorIs(t, err, net.ErrClosed, "the net.Conn is closed while parked")
	require.Equal(t, client.LocalAddr().String(), s.remote().String())
	require.Equal(t, client.RemoteAddr().String(), s.localAddr().String())

	// A message from the client: the parker would resume the session; do its part here.
	require.True(t, s.home().unpark(s))
	s.reattach()
	require.IsType(t, resumedConn{}, s.nc, "the descriptor under an *os.File, not net.FileConn's new socket")
	require.Equal(t, int32(-1), s.rawFD)
	require.GreaterOrEqual(t, s.fd, int32(0))
	require.Equal(t, s.fd, socketFD(s.nc), "the session's descriptor is the resumed connection's own")
	require.Equal(t, client.RemoteAddr().String(), s.nc.LocalAddr().String())
	_, err = client.Write(wire.Query(nil, "SELECT 1"))
	require.NoError(t, err)
	typ, n, err := s.rd.Next()
	require.NoError(t, err)
	require.Equal(t, byte('Q'), typ)
	_, err = s.rd.Message(n)
	require.NoError(t, err)
	require.NoError(t, s.wr.Write([]byte{'Z', 0, 0, 0, 5, 'I'}))
	require.NoError(t, s.wr.Flush())
	got := make([]byte, 6)
	_, err = io.ReadFull(client, got)
	require.NoError(t, err)
	require.Equal(t, []byte{'Z', 0, 0, 0, 5, 'I'}, got)
	require.Equal(t, client.LocalAddr().String(), s.remote().String())

	// Parked again and killed (KILL, shutdown): the FATAL goes out on the descriptor and
	// the socket closes. A resumed client parks with its resumedConn (its descriptor stays
	// in the runtime's poller): no new descriptor, nothing to undo at the next resume.
	require.True(t, s.park())
	require.IsType(t, resumedConn{}, s.nc)
	require.Equal(t, int32(-1), s.rawFD)
	require.Nil(t, s.rd, "the reader goes while parked, as when detached")
	pe := shutdownFatal()
	fatal := pe.Append(nil)
	s.tell(pe, time.Second)
	s.home().unpark(s) // as if the parker had fired: closeAndWake must not resume
	s.closeAndWake()
	require.Equal(t, int32(-1), s.rawFD)
	require.NoError(t, client.SetReadDeadline(time.Now().Add(5*time.Second)))
	all, err := io.ReadAll(client)
	require.NoError(t, err, "the client sees its FATAL, then EOF")
	require.Equal(t, fatal, all)
	s.reattach() // a resume after the close finds a closed connection
	_, _, err = s.rd.Next()
	require.Error(t, err)
	require.True(t, connClosed(err), "%v", err)
	require.False(t, s.park(), "a closed client is not parked again")
}

// A client closed by another goroutine before it parks is not parked: its descriptor
// number may already belong to a new connection.
func TestClosedClientIsNotParked(t *testing.T) {
	s, _ := parkingSession(t)
	s.closeAndWake()
	require.False(t, s.park())
	require.Equal(t, int32(-1), s.rawFD)
}

// A client that parks owning nothing but counters gives its working state back, its
// counters folded into its pool's retired totals, and resumes with a fresh one; one that
// made something a fresh one lacks (a named statement, LISTEN) keeps it.
func TestParkedClientShedsItsWork(t *testing.T) {
	s, _ := parkingSession(t)
	key := poolKey{db: "db", user: "u"}
	s.entry = &poolEntry{key: key}
	s.srv.console = &consoleState{retired: make(map[poolKey]*totals)}
	s.stats.Queries, s.stats.Transactions = 3, 2
	s.ops.parses = 4
	s.ops.in.Store(100)
	require.True(t, s.park())
	require.Nil(t, s.sessionWork, "a parked client that made nothing keeps no working state")
	require.Equal(t, totals{queries: 3, xacts: 2, parses: 4, received: 100}, *s.srv.console.retired[key],
		"its counters are the pool's now")

	require.True(t, s.home().unpark(s))
	s.reattach()
	s.ensureWork()
	require.NotNil(t, s.sessionWork)
	require.Equal(t, byte('I'), s.TxStatus)
	require.Equal(t, totals{}, s.sessionTotals(), "counted once: the pool has them")
	s.retire()
	require.Equal(t, totals{queries: 3, xacts: 2, parses: 4, received: 100}, *s.srv.console.retired[key])

	for name, made := range map[string]func(s *Session){
		"statement to check": func(s *Session) { s.stmts, s.clears.probeDue = map[string]*stmtDef{"s1": {}}, true },
		"LISTEN":             func(s *Session) { s.listening = true },
		"pinning unnamed":    func(s *Session) { s.unnamed.body, s.unnamedPin = []byte("SELECT 1\x00\x00\x00"), pinTemp },
	} {
		s, _ := parkingSession(t)
		made(s)
		w := s.sessionWork
		require.True(t, s.park(), name)
		require.Same(t, w, s.sessionWork, "%s: a parked client keeps what it made", name)
		require.True(t, s.home().unpark(s), name) // not resumed when the test's client closes
	}

	// The statements a driver left behind, the unnamed one (PostgreSQL keeps it until the
	// next Parse of the unnamed statement) and named ones: kept aside, the working state
	// given back, and the fresh one's when the client comes back.
	s, _ = parkingSession(t)
	body := []byte("SELECT 1\x00\x00\x00")
	def := &stmtDef{}
	s.unnamed.body, s.stmts = body, map[string]*stmtDef{"s1": def}
	require.True(t, s.park())
	require.Nil(t, s.sessionWork, "only the statements are kept")
	require.NotNil(t, s.kept)
	require.True(t, s.home().unpark(s))
	s.reattach()
	s.ensureWork()
	require.Equal(t, body, s.unnamed.body)
	require.Same(t, def, s.stmts["s1"])
	require.Nil(t, s.kept)
}

// A client that parks without its working state keeps when its latest request began
// (SHOW CLIENTS' request_time), and has it again once resumed.
func TestParkedClientKeepsItsRequestTime(t *testing.T) {
	s, _ := parkingSession(t)
	s.srv.console = &consoleState{retired: make(map[poolKey]*totals)}
	s.entry = &poolEntry{key: poolKey{db: "db", user: "u"}}
	at := time.Now() // after monoBase, as every request is
	s.ops.qStart = monoOf(at)
	s.noteReady('I', at.Add(time.Second))
	s.mu.Lock()
	require.WithinDuration(t, at, s.lastRequestLocked(), time.Millisecond, "answered: the request's start")
	s.mu.Unlock()

	require.True(t, s.park())
	require.Nil(t, s.sessionWork, "parked without its working state")
	s.mu.Lock()
	require.WithinDuration(t, at, s.lastRequestLocked(), time.Millisecond, "parked")
	waiting, _ := s.waitingLocked()
	s.mu.Unlock()
	require.False(t, waiting, "a parked client waits for nothing")

	require.True(t, s.home().unpark(s))
	s.reattach()
	s.ensureWork()
	s.mu.Lock()
	require.WithinDuration(t, at, s.lastRequestLocked(), time.Millisecond, "resumed")
	s.mu.Unlock()
	require.Zero(t, s.waitSince)
}

// A session whose park fails goes on running: it has its working state.
func TestFailedParkKeepsWork(t *testing.T) {
	s, _ := parkingSession(t)
	s.closeAndWake()
	require.False(t, s.park())
	require.NotNil(t, s.sessionWork)
}

// TestParkDelay: the sweep parks after parkAfter only once the server holds
// parkManyClients clients.
func TestParkDelay(t *testing.T) {
	require.Equal(t, parkAfterFew, parkDelay(1))
	require.Equal(t, parkAfterFew, parkDelay(parkManyClients-1))
	require.Equal(t, parkAfter, parkDelay(parkManyClients))
	require.Equal(t, parkAfter, parkDelay(10*parkManyClients))
}

// A client that has just logged in on a server holding many clients is parked only once
// it has stayed silent for eagerParkWait: one that sends its first request within that
// time (most do, one round trip after the login) keeps its goroutine and skips the park
// and resume; its request stays buffered for the relay. Below eagerParkClients nobody is
// parked at login.
func TestParkAfterLoginWaitsForAFirstRequest(t *testing.T) {
	s, _ := parkingSession(t)
	require.False(t, s.parkAfterLogin(eagerParkClients-1), "few clients: no eager park")

	s, client := parkingSession(t)
	go func() {
		time.Sleep(eagerParkWait / 5)
		_, _ = client.Write(wire.Query(nil, "SELECT 1"))
	}()
	start := time.Now()
	require.False(t, s.parkAfterLogin(eagerParkClients), "a first request within the wait: not parked")
	require.Less(t, time.Since(start), eagerParkWait+time.Second)
	require.Greater(t, s.rd.Buffered(), 0, "the request stays buffered for the relay")
	require.Equal(t, int32(-1), s.parkedFD)
	typ, n, err := s.rd.Next()
	require.NoError(t, err)
	require.Equal(t, byte('Q'), typ)
	_, err = s.rd.Message(n)
	require.NoError(t, err)
	// The wait's deadline is gone: a read later than eagerParkWait still waits.
	go func() {
		time.Sleep(2 * eagerParkWait)
		_, _ = client.Write(wire.Query(nil, "SELECT 2"))
	}()
	typ, _, err = s.rd.Next()
	require.NoError(t, err, "no deadline left on the socket")
	require.Equal(t, byte('Q'), typ)

	s, _ = parkingSession(t)
	start = time.Now()
	require.True(t, s.parkAfterLogin(eagerParkClients), "silent for the whole wait: parked")
	require.GreaterOrEqual(t, time.Since(start), eagerParkWait)
	require.True(t, s.home().unpark(s)) // not resumed when the test's client closes
}

// A client that leaves gives its read buffer back to the pool for the clients still
// there: at the end of a storm (5,000 clients ending together) each departure otherwise
// cost a fresh 16 KB buffer for a later read (bench/README.md, session of 06:58 UTC).
func TestEndReleasesReadBuffer(t *testing.T) {
	s, client := parkingSession(t)
	s.srv.cfgP.Store(&config.Config{})
	s.srv.wg.Add(1) // what accept counted for this client (connDone)
	_, err := client.Write([]byte{'X', 0, 0, 0, 4})
	require.NoError(t, err)
	typ, _, err := s.rd.Next()
	require.NoError(t, err)
	require.Equal(t, byte('X'), typ)
	require.NotNil(t, s.rd.Window(), "the Terminate was read into a pooled buffer (its header left unread, as the relay leaves it)")
	s.end(nil)
	require.Nil(t, s.rd.Window(), "the buffer went back to the pool")
}

// TestParkKeepsSocketWhileWriting: a session whose writer is in use (flushLeft still
// sending the end of an answer the client's socket did not take at once) parks with its
// connection. Detaching closed the socket under that write: the client lost the rest of
// its answer and was disconnected.
func TestParkKeepsSocketWhileWriting(t *testing.T) {
	s, client := parkingSession(t)
	accepted := s.nc
	s.wmu.Lock() // the writer, busy
	require.True(t, s.park())
	require.Equal(t, accepted, s.nc, "parked with its net.Conn")
	_, err := accepted.Write([]byte("x"))
	require.NoError(t, err, "the write in progress goes on")
	s.wmu.Unlock()
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 1)
	_, err = io.ReadFull(client, b)
	require.NoError(t, err)
	require.Equal(t, "x", string(b))
	// Out of the parker before the test's end closes the client: the parker would end the
	// session, which this bare server cannot (it has no configuration).
	require.True(t, s.home().unpark(s))
	s.closeAndWake()
}

// A client that ran requests without changing a setting parks holding the shared startup
// settings again (unshareSettings), not the copy of its own it made for its requests
// (ownSettings); one that set something, or that a request left settings state in, keeps
// its own.
func TestParkedClientGivesBackItsSettings(t *testing.T) {
	shared := &settings{Settings: link.Settings{Start: pool.Params{{Name: "application_name", Value: "app"}}}, shared: true}
	for name, tc := range map[string]struct {
		change func(st *settings)
		keeps  bool
	}{
		"nothing":      {func(*settings) {}, false},
		"a value set":  {func(st *settings) { st.Own = pool.Params{{Name: "work_mem", Value: "8MB"}} }, true},
		"a re-set due": {func(st *settings) { st.reapplyQuery = "SET work_mem = '4MB'" }, true},
		"unnamed sets": {func(st *settings) { st.unnamed = &setTouch{} }, true},
	} {
		s, _ := parkingSession(t)
		s.set.Store(shared)
		s.ownSettings()
		own := s.set.Load()
		require.NotSame(t, shared, own, name)
		tc.change(own)
		require.True(t, s.park(), name)
		if tc.keeps {
			require.Same(t, own, s.set.Load(), "%s: the client's own settings are kept", name)
		} else {
			require.Same(t, shared, s.set.Load(), "%s: the shared settings are the client's again", name)
		}
		require.True(t, s.home().unpark(s), name)
		s.reattach()
		s.ensureWork()
		s.ownSettings()
		require.False(t, s.set.Load().shared, "%s: its next request has a copy of its own", name)
	}
}

// A client resumed from a park gets a new reader (newReader), whose count starts again:
// its first Parse, counted as the old reader's was, is split anew, not given the split
// the old reader's message of that count and length had (msgFields).
func TestNewReaderForgetsFields(t *testing.T) {
	old := link.AppendParse(nil, "a", "select 12", []byte{0, 0})
	s := &Session{rd: wire.NewReader(bytes.NewReader(old)), sessionWork: newWork()}
	s.lw = &loopWork{}
	_, n, err := s.rd.Next()
	require.NoError(t, err)
	m, err := s.rd.Message(n)
	require.NoError(t, err)
	require.Equal(t, "a", string(s.fieldsOf(wire.Body(m), s.rd.Seq()).First(wire.Body(m))))

	nc, peer := net.Pipe()
	t.Cleanup(func() { _, _ = nc.Close(), peer.Close() })
	go func() { _, _ = peer.Write(link.AppendParse(nil, "ab", "select 1", []byte{0, 0})) }()
	s.newReader(nc)
	_, n, err = s.rd.Next()
	require.NoError(t, err)
	m, err = s.rd.Message(n)
	require.NoError(t, err)
	body := wire.Body(m)
	require.Len(t, body, len(old)-wire.HeaderLen)
	require.Equal(t, "ab", string(s.fieldsOf(body, s.rd.Seq()).First(body)))
}
