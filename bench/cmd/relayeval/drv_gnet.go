package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// gnetDriver runs the relay on gnet's event loops: clients are accepted by gnet
// (least-connections balancing), server connections are logged in with pgconn and
// enrolled into the engine (Engine.Register with the net.Conn in the context; a
// replacement goes to the loop of the one it replaces with EventLoop.Enroll). A gnet
// connection cannot leave its loop, so every loop is a pool of its own (Pool without
// migrate): size/loops servers, its own FIFO. gnet buffers output without bound, so a
// slow client is not throttled.
type gnetDriver struct {
	gnet.BuiltinEventEngine
	cfg    *relay
	loops  int
	pool   *Pool[*gnServer, *gnClient]
	booted chan gnet.Engine
	eng    gnet.Engine
	ticks  atomic.Int32
	ids    atomic.Uint32
	mu     sync.Mutex
	index  map[gnet.EventLoop]int
}

type gnServer struct {
	c      gnet.Conn
	loop   int
	peer   *gnClient
	closed bool
}

type gnClient struct {
	c      gnet.Conn
	loop   int
	id     uint32
	st     link
	peer   *gnServer
	ready  bool
	wait   bool
	quit   bool // Terminate came after a request: close at its release
	closed bool
}

func (d *gnetDriver) start(ctx context.Context, ln net.Listener, servers []net.Conn) error {
	addr := ln.Addr().String()
	_ = ln.Close() // gnet binds its own listener on the same address
	d.pool = NewPool[*gnServer, *gnClient](d.loops, d.cfg.poolSize, false)
	d.index = map[gnet.EventLoop]int{}
	d.booted = make(chan gnet.Engine, 1)
	done := make(chan error, 1)
	go func() {
		done <- gnet.Run(d, "tcp://"+addr,
			gnet.WithMulticore(true), gnet.WithNumEventLoop(d.loops),
			gnet.WithLoadBalancing(gnet.LeastConnections), gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithReusePort(false), gnet.WithReuseAddr(true), gnet.WithTicker(true))
	}()
	var eng gnet.Engine
	select {
	case eng = <-d.booted:
	case err := <-done:
		return fmt.Errorf("gnet: %w", err)
	}
	go func() {
		<-ctx.Done()
		_ = eng.Stop(context.Background())
	}()
	for _, c := range servers {
		rctx := gnet.NewContext(gnet.NewNetConnContext(ctx, c), &gnServer{})
		ch, err := eng.Register(rctx)
		if err != nil {
			return fmt.Errorf("gnet register: %w", err)
		}
		if res := <-ch; res.Err != nil {
			return fmt.Errorf("gnet register: %w", res.Err)
		}
	}
	return nil
}

// OnBoot runs before gnet starts its loops; the first OnTick runs after, so the engine
// is handed out from there (Register before then races with gnet's start).
func (d *gnetDriver) OnBoot(eng gnet.Engine) gnet.Action {
	d.eng = eng
	return gnet.None
}

func (d *gnetDriver) OnTick() (time.Duration, gnet.Action) {
	if d.ticks.Add(1) == 1 {
		d.booted <- d.eng
	}
	return time.Hour, gnet.None
}

// loopOf numbers gnet's loops in the order they are first seen.
func (d *gnetDriver) loopOf(el gnet.EventLoop) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	i, ok := d.index[el]
	if !ok {
		i = len(d.index)
		d.index[el] = i
	}
	return i
}

func (d *gnetDriver) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	loop := d.loopOf(c.EventLoop())
	if s, ok := c.Context().(*gnServer); ok {
		s.c, s.loop = c, loop
		if w, _, ok := d.pool.Add(loop, s); ok {
			d.link(s, w)
		}
		return nil, gnet.None
	}
	c.SetContext(&gnClient{c: c, loop: loop, id: d.ids.Add(1)})
	return nil, gnet.None
}

func (d *gnetDriver) OnTraffic(c gnet.Conn) gnet.Action {
	switch x := c.Context().(type) {
	case *gnClient:
		return d.clientData(x)
	case *gnServer:
		return d.serverData(x)
	}
	return gnet.Close
}

func (d *gnetDriver) clientData(cl *gnClient) gnet.Action {
	if cl.wait || cl.quit {
		return gnet.None // the request stays in gnet's buffer until a server comes
	}
	data, _ := cl.c.Peek(-1)
	if !cl.ready {
		used, out, ready, quit := d.cfg.greet.handshake(data, cl.id, nil)
		if len(out) > 0 {
			_, _ = cl.c.Write(out)
		}
		if quit {
			return gnet.Close
		}
		if used > 0 { // gnet's Discard(0) discards everything
			_, _ = cl.c.Discard(used)
		}
		if cl.ready = ready; !ready {
			return gnet.None
		}
		data, _ = cl.c.Peek(-1)
	}
	if cl.peer == nil {
		t, whole := firstMessage(data)
		if !whole {
			return gnet.None
		}
		if t == 'X' {
			return gnet.Close
		}
		s, _, ok := d.pool.Lease(cl.loop, cl)
		if !ok {
			cl.wait = true
			return gnet.None
		}
		s.peer, cl.peer = cl, s
	}
	fwd, term, _, err := cl.st.scanClient(data)
	if err != nil {
		_, _ = cl.c.Write(errorResponse(err.Error()))
		return gnet.Close
	}
	if fwd > 0 {
		_, _ = cl.peer.c.Write(data[:fwd])
		_, _ = cl.c.Discard(fwd)
	}
	if term {
		if cl.st.owed > 0 {
			cl.quit = true
			return gnet.None
		}
		return gnet.Close
	}
	return gnet.None
}

// link gives server s to waiting client w (both on one loop) and forwards w's request.
func (d *gnetDriver) link(s *gnServer, w *gnClient) {
	w.wait = false
	s.peer, w.peer = w, s
	if d.clientData(w) == gnet.Close {
		_ = w.c.EventLoop().Close(w.c)
	}
}

func (d *gnetDriver) serverData(s *gnServer) gnet.Action {
	cl := s.peer
	if cl == nil {
		log.Printf("server connection: data while idle")
		return gnet.Close
	}
	data, _ := s.c.Peek(-1)
	fwd, release, _, err := cl.st.scanServer(data)
	if err != nil || (release && fwd != len(data)) {
		log.Printf("server connection: %v", errors.Join(err, errors.New("bad answer")))
		return gnet.Close
	}
	if fwd > 0 {
		_, _ = cl.c.Write(data[:fwd])
		_, _ = s.c.Discard(fwd)
	}
	if release {
		s.peer, cl.peer = nil, nil
		if w, _, ok := d.pool.Release(s.loop, s); ok {
			d.link(s, w)
		}
		if cl.quit {
			_ = cl.c.EventLoop().Close(cl.c)
		}
	}
	return gnet.None
}

func (d *gnetDriver) OnClose(c gnet.Conn, _ error) gnet.Action {
	switch x := c.Context().(type) {
	case *gnClient:
		x.closed = true
		if x.wait {
			d.pool.Cancel(x.loop, x)
		}
		if s := x.peer; s != nil { // mid-request: the server's state is unknown
			x.peer, s.peer = nil, nil
			s.closed = true
			_ = c.EventLoop().Close(s.c)
			d.pool.Drop(x.loop)
			d.refill(c.EventLoop())
		}
	case *gnServer:
		if x.closed {
			return gnet.None
		}
		x.closed = true
		if cl := x.peer; cl != nil {
			x.peer, cl.peer = nil, nil
			_ = c.EventLoop().Close(cl.c)
			d.pool.Drop(x.loop)
		} else if !d.pool.DropIdle(x.loop, x) {
			return gnet.None
		}
		d.refill(c.EventLoop())
	}
	return gnet.None
}

// refill dials a replacement server and enrolls it in loop el.
func (d *gnetDriver) refill(el gnet.EventLoop) {
	go d.cfg.refill(func(c net.Conn) {
		if _, err := el.Enroll(gnet.NewContext(d.cfg.ctx, &gnServer{}), c); err != nil {
			log.Printf("gnet enroll: %v", err)
		}
	})
}
