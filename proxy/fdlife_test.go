//go:build linux

package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/pgmux/pgmux/internal/pgtest"
	"github.com/pgmux/pgmux/pool"
	"github.com/pgmux/pgmux/proxy/evloop"
)

// epollEntry is an entry of one of the process's epoll sets (the client loops', the
// runtime's): descriptor fd of set, registered as the file of inode ino.
type epollEntry struct {
	set, fd string
	ino     uint64
}

// epollEntries lists the entries of the process's epoll sets, from /proc.
func epollEntries() ([]epollEntry, error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	var out []epollEntry
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/self/fd/" + fd.Name()); err != nil || l != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + fd.Name())
		if err != nil {
			continue // closed meanwhile
		}
		for _, line := range strings.Split(string(info), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "tfd:" {
				continue
			}
			e := epollEntry{set: fd.Name(), fd: f[1]}
			for _, kv := range f {
				if v, ok := strings.CutPrefix(kv, "ino:"); ok {
					e.ino, _ = strconv.ParseUint(v, 16, 64)
				}
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// staleEpollEntries lists the entries of the process's epoll sets whose descriptor
// number no longer refers to the file registered under it: a number closed while
// registered, its socket kept alive by a duplicate. Such an entry goes on reporting that
// socket's events under a number the next socket takes.
func staleEpollEntries() ([]string, error) { return staleEpollEntriesOf("") }

// staleEpollEntriesOf is staleEpollEntries for the entries of descriptor number fd only
// ("": all of them).
func staleEpollEntriesOf(fd string) ([]string, error) {
	entries, err := epollEntries()
	var stale []string
	for _, e := range entries {
		if fd != "" && e.fd != fd {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat("/proc/self/fd/"+e.fd, &st); err != nil || st.Ino != e.ino {
			stale = append(stale, fmt.Sprintf("epoll set %s: descriptor %s registered as inode %d, now %d (%v)",
				e.set, e.fd, e.ino, st.Ino, err))
		}
	}
	return stale, err
}

// StaleEpollEntries is staleEpollEntries for the external tests, looked at until none is
// left or about a second has passed (a close may be under way while it looks).
func StaleEpollEntries(t *testing.T) []string {
	t.Helper()
	var stale []string
	for range 20 {
		var err error
		stale, err = staleEpollEntries()
		require.NoError(t, err)
		if len(stale) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return stale
}

// fdOpen reports whether descriptor fd is open.
func fdOpen(fd int32) bool {
	_, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	return e == 0
}

// A client that waited for requests on the loop, then went to a goroutine of its own
// (leaveLoop keeps its registration) and parks from there, is detached: its descriptor
// duplicated and the original closed. The original's number must leave the loop's set
// first: closing it does not, while the socket lives on under the duplicate, and the
// entry reported the socket's events under a number the next socket gets.
func TestDetachLeavesNoStaleEpollEntry(t *testing.T) {
	s, client := parkingSession(t)
	p := s.home()
	fd := s.fd
	// Idle since now: the loop's sweep parks a client waiting on the loop once it has been
	// idle for parkDelay, and a session that never was idle counts as idle since 1970, so
	// a tick between loopPark and leaveLoop detached it first (seen once under -race:
	// park found no reader).
	s.idleSince = time.Now().UnixNano()
	require.True(t, p.loopPark(s, fd, true))
	p.leaveLoop(s) // a request went to a goroutine: the descriptor stays in the set
	require.True(t, s.park())
	t.Cleanup(func() { p.unpark(s) }) // before the client closes: no event ends it (it has no config)
	require.NotEqual(t, fd, s.rawFD)
	// Only the entries of fd's number count: another test's goroutine may be closing a
	// descriptor of its own meanwhile (its entry leaves the sets a moment after the
	// number is free), and that is no stale entry of this one. The stale entry looked
	// for here stays, so a second's looking cannot hide it.
	var stale []string
	for range 20 {
		var err error
		stale, err = staleEpollEntriesOf(strconv.Itoa(int(fd)))
		require.NoError(t, err)
		if len(stale) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.Empty(t, stale, "the closed number is still in the loop's set")
	require.Equal(t, 1, entriesOf(t, s.rawFD), "parked under its duplicate")
	_ = client
}

// entriesOf counts the entries for descriptor fd in the process's epoll sets.
func entriesOf(t *testing.T, fd int32) int {
	t.Helper()
	entries, err := epollEntries()
	require.NoError(t, err)
	n := 0
	for _, e := range entries {
		if e.fd == strconv.Itoa(int(fd)) {
			n++
		}
	}
	return n
}

// rawLoopSession is a session as a login on the loop leaves it: logged in, no net.Conn,
// its bare descriptor (a duplicate of a loopback socket's) in a loginConn.
func rawLoopSession(t *testing.T) (*Session, *loginConn, net.Conn) {
	t.Helper()
	s, client := parkingSession(t)
	dup, err := dupCloexec(s.fd)
	require.NoError(t, err)
	require.NoError(t, s.nc.Close()) // the socket lives on under dup alone
	c := &loginConn{s: s, loggedIn: true}
	c.fd.Store(dup)
	s.nc, s.fd = c, dup
	s.rd.SetSource(c)
	s.wr.Reset(c)
	return s, c, client
}

// Ending a client that logged in on the loop and has no net.Conn yet, from another
// goroutine (KILL, a shutdown, a timer: closeAndWake), while the loop holds it (its
// first request being read: loopBusy) must not close its descriptor under the loop's
// read, which would then read whatever socket took the number. The socket is shut down
// (the client sees its end at once) and the descriptor stays until the session's owner
// closes it; from then on the session's reads fail as on a closed connection (they
// read descriptor -1, EBADF, logged as the client's error).
func TestEndedBareClientKeepsItsNumberUnderTheLoop(t *testing.T) {
	s, c, client := rawLoopSession(t)
	fd := c.fd.Load()
	p := s.home()
	p.mu.Lock()
	p.placeLocked(s, fd)
	s.onLoop = loopBusy // the loop reads its first request (serveLoop)
	p.mu.Unlock()

	s.closeAndWake()
	require.True(t, fdOpen(fd), "the descriptor was closed while the loop held it")
	require.Equal(t, fd, c.fd.Load())
	require.NoError(t, client.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := client.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "the client sees its end at once")
	_, err = s.rd.ReadNow()
	require.Error(t, err, "the loop's next read fails")

	p.leaveLoop(s)
	s.closeLoginFD() // the owner closes it at the end
	require.False(t, fdOpen(fd))
	_, err = s.rd.ReadNow()
	require.ErrorIs(t, err, net.ErrClosed, "a read of the closed connection reached the kernel")
}

// loopLessee hands its server to a loop as soon as it is leased (as a session's Pump
// does once it waits for the next answer on the loop).
type loopLessee struct {
	p      *parker
	parked chan struct{}
}

func (l *loopLessee) Pump(c *pool.Conn) error {
	if parkServer(c, l.p) {
		close(l.parked)
		return pool.ErrLoopReads
	}
	return errors.New("not parked on the loop")
}

// A server connection handed to a loop (Adopt) may be closed before the loop takes it up
// (a KILL, a reconnect, its server's end): the loop registers its descriptor only while
// it is open (under OnFD). Registered from the number the connection cached, it took
// whatever socket had the number by then into the loop's set, polled as that server's.
func TestAdoptedServerClosedMeanwhileIsNotRegistered(t *testing.T) {
	pg := pgtest.Start(t)
	pl, err := pool.New(pool.Options{Size: 1, Target: func() *pool.Target {
		return &pool.Target{Host: pg.Host, Port: pg.Port, Database: pgtest.AppDB, User: pgtest.AppUser, Password: pgtest.AppPassword}
	}})
	require.NoError(t, err)
	t.Cleanup(pl.Close)
	ev, err := evloop.New[handover]()
	require.NoError(t, err)
	p := &parker{ev: ev, log: zap.NewNop()} // its loop runs at the end only: the test is the loop
	p.home.Looper = p
	ended := make(chan struct{})
	close(ended)
	p.done = ended
	defer p.loop() // ends at once, serving what was posted

	l := &loopLessee{p: p, parked: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pl.Acquire(ctx, l)
	require.NoError(t, err)
	// The reader calls Pump when the server sends something: at once when it started
	// after the lease, but a reader already waiting on the idle server waits for its next
	// message. A Sync's ReadyForQuery is that message, whichever came first.
	require.NoError(t, c.Wr.Write([]byte{'S', 0, 0, 0, 4}))
	require.NoError(t, c.Wr.Flush())
	select {
	case <-l.parked: // Adopt posted to the loop, not taken up yet
	case <-ctx.Done():
		t.Fatal("the server was not handed to the loop")
	}
	fd := c.LoopFD()
	require.GreaterOrEqual(t, fd, 0)
	c.Discard(errors.New("closed before the loop took it up"))
	require.False(t, fdOpen(int32(fd)))
	// The number goes to another socket before the loop takes the hand-over up: the
	// kernel may give it to one of tcpPair's sockets itself (the lowest free number),
	// where dup3 onto it would be EINVAL.
	other, _ := tcpPair(t)
	if ofd := int(socketFD(other)); ofd != fd {
		require.NoError(t, syscall.Dup3(ofd, fd, syscall.O_CLOEXEC))
		defer syscall.Close(fd)
	}
	require.True(t, fdOpen(int32(fd)), "the number is another socket's now")

	p.adopted(c)
	require.Zero(t, entriesOf(t, int32(fd)), "another socket registered as the closed server")
	require.True(t, fd >= len(p.servers) || p.servers[fd] == nil)
}
