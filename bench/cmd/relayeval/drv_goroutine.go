package main

import (
	"context"
	"errors"
	"log"
	"net"
	"sync"
	"sync/atomic"
)

// goDriver is pgmux's present model, simplified: a goroutine per client reading its
// socket and writing requests to the leased server, and a reader goroutine per server
// connection writing answers to the linked client; blocking I/O on net.Conn (Go's
// netpoller underneath). One pool, one "loop" index.
type goDriver struct {
	cfg  *relay
	pool *Pool[*gServer, *gClient]
	ids  atomic.Uint32
}

type gServer struct {
	conn   net.Conn
	link   atomic.Pointer[gClient] // the client it answers; set by whoever leases it
	broken atomic.Bool
}

type gClient struct {
	conn  net.Conn
	mu    sync.Mutex // guards st and quit: the client goroutine counts requests, the server reader answers
	st    link
	quit  bool                    // Terminate came after a request: the server reader closes the client at release
	srv   atomic.Pointer[gServer] // the leased server; cleared by the server reader at release
	ready chan *gServer           // a waiter gets its server here
}

func (d *goDriver) start(ctx context.Context, ln net.Listener, servers []net.Conn) error {
	d.pool = NewPool[*gServer, *gClient](1, d.cfg.poolSize, false)
	for _, c := range servers {
		d.addServer(c)
	}
	go func() {
		<-ctx.Done()
		_ = ln.Close()
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go d.serveClient(c)
		}
	}()
	return nil
}

func (d *goDriver) addServer(c net.Conn) {
	s := &gServer{conn: c}
	go d.readServer(s)
	if w, _, ok := d.pool.Add(0, s); ok {
		d.hand(s, w)
	}
}

// hand links server s to waiting client w and wakes w.
func (d *goDriver) hand(s *gServer, w *gClient) {
	s.link.Store(w)
	w.srv.Store(s)
	w.ready <- s
}

// lease returns a server for cl, waiting in the FIFO if the pool is busy. A server that
// broke meanwhile is found by the first write to it.
func (d *goDriver) lease(cl *gClient) *gServer {
	s, _, ok := d.pool.Lease(0, cl)
	if !ok {
		return <-cl.ready
	}
	s.link.Store(cl)
	cl.srv.Store(s)
	return s
}

func (d *goDriver) serveClient(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	cl := &gClient{conn: c, ready: make(chan *gServer, 1)}
	defer d.closeClient(cl)
	buf := make([]byte, 8192)
	have := 0
	id := d.ids.Add(1)
	var out []byte
	for ready := false; !ready; {
		n, err := c.Read(buf[have:])
		if err != nil {
			return
		}
		have += n
		var used int
		var quit bool
		used, out, ready, quit = d.cfg.greet.handshake(buf[:have], id, out[:0])
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
		if quit {
			return
		}
		have = copy(buf, buf[used:have])
	}
	for {
		cl.mu.Lock()
		fwd, term, need, err := cl.st.scanClient(buf[:have])
		cl.mu.Unlock()
		if err != nil {
			_, _ = c.Write(errorResponse(err.Error()))
			return
		}
		if fwd > 0 {
			s := cl.srv.Load()
			if s == nil {
				s = d.lease(cl)
			}
			if _, err := s.conn.Write(buf[:fwd]); err != nil {
				return
			}
			have = copy(buf, buf[fwd:have])
		}
		if term {
			cl.mu.Lock()
			cl.quit = cl.st.owed > 0 && cl.srv.Load() != nil
			cl.mu.Unlock()
			return
		}
		if need > len(buf) {
			nb := make([]byte, need)
			copy(nb, buf[:have])
			buf = nb
		}
		n, err := c.Read(buf[have:])
		if err != nil {
			return
		}
		have += n
	}
}

// closeClient closes cl; a server it still holds (mid-request) is closed too: its state
// is unknown.
func (d *goDriver) closeClient(cl *gClient) {
	cl.mu.Lock()
	quit := cl.quit
	cl.mu.Unlock()
	if quit {
		return // the server reader closes it after the answer
	}
	_ = cl.conn.Close()
	if s := cl.srv.Swap(nil); s != nil {
		s.broken.Store(true)
		_ = s.conn.Close()
		d.pool.Drop(0)
		go d.cfg.refill(func(c net.Conn) { d.addServer(c) })
	}
}

func (d *goDriver) readServer(s *gServer) {
	buf := make([]byte, 32<<10)
	have := 0
	for {
		n, err := s.conn.Read(buf[have:])
		if err != nil {
			d.serverGone(s, err)
			return
		}
		have += n
		cl := s.link.Load()
		if cl == nil {
			d.serverGone(s, errors.New("server sent data while idle"))
			return
		}
		cl.mu.Lock()
		fwd, release, need, err := cl.st.scanServer(buf[:have])
		cl.mu.Unlock()
		if err != nil {
			d.serverGone(s, err)
			return
		}
		if release {
			if fwd != have {
				d.serverGone(s, errors.New("server sent data after ReadyForQuery"))
				return
			}
			s.link.Store(nil)
			cl.mu.Lock()
			mine, quit := cl.srv.CompareAndSwap(s, nil), cl.quit
			cl.mu.Unlock()
			if !mine {
				return // the client left mid-request and closed s
			}
			w, _, handed := d.pool.Release(0, s)
			if handed {
				s.link.Store(w)
				w.srv.Store(s)
			}
			_, _ = cl.conn.Write(buf[:fwd])
			if quit {
				_ = cl.conn.Close()
			}
			if handed {
				w.ready <- s
			}
			have = 0
			continue
		}
		if fwd > 0 {
			_, _ = cl.conn.Write(buf[:fwd])
			have = copy(buf, buf[fwd:have])
		}
		if need > len(buf) {
			nb := make([]byte, need)
			copy(nb, buf[:have])
			buf = nb
		}
	}
}

// serverGone handles a server that failed: its linked client is closed, an idle one
// leaves the pool, and a replacement is dialed.
func (d *goDriver) serverGone(s *gServer, err error) {
	if !s.broken.Swap(true) {
		log.Printf("server connection: %v", err)
	}
	_ = s.conn.Close()
	if cl := s.link.Swap(nil); cl != nil {
		if cl.srv.CompareAndSwap(s, nil) {
			d.pool.Drop(0)
			go d.cfg.refill(func(c net.Conn) { d.addServer(c) })
		}
		_ = cl.conn.Close()
		return
	}
	if d.pool.DropIdle(0, s) {
		go d.cfg.refill(func(c net.Conn) { d.addServer(c) })
	}
}
