//go:build linux

package proxy

import (
	"os"
	"sync"
	"time"
)

// A client's socket at the end of its session. Closing an *os.File (a resumed or accepted
// client's connection, detach_linux.go) makes close(2) through the runtime's
// blocking-syscall entry, and each such entry wakes the runtime's monitor thread (sysmon)
// from its deep sleep and sets it polling every 20 µs again for as long as a P is busy.
// Clients that connect for each transaction (pgbench -C, serverless functions) paid
// that at every departure: sysmon and its usleep were 11% of pgmux's CPU in a perf profile
// of `pgbench -C -c 4`, the close itself 8%. So when the client ended the session itself
// (its Terminate, or the end of its stream), which leaves it nothing to wait for from
// pgmux, its descriptor is closed a little later with the others that left meanwhile: one
// blocking entry per batch. A session pgmux ends (an error, a kill, a timeout) closes the
// socket at once, so that the client reads the end of the stream without delay.

// closeBatchDelay is how long a departed client's descriptor may stay open.
const closeBatchDelay = 20 * time.Millisecond

// laterCloser closes the files given to it in batches.
//
// Owners: any goroutine adds (under mu); the batch's timer goroutine takes the list and
// closes it.
type laterCloser struct {
	delay time.Duration // from the first file of a batch to its close
	mu    sync.Mutex
	files []*os.File
	armed bool // a batch's timer is set
}

// clientCloser is the process's: descriptors are the process's too.
var clientCloser = laterCloser{delay: closeBatchDelay}

// add queues f to be closed with the next batch.
func (lc *laterCloser) add(f *os.File) {
	lc.mu.Lock()
	lc.files = append(lc.files, f)
	arm := !lc.armed
	lc.armed = true
	lc.mu.Unlock()
	if arm {
		time.AfterFunc(lc.delay, lc.flush)
	}
}

// flush closes the batch.
func (lc *laterCloser) flush() {
	lc.mu.Lock()
	fs := lc.files
	lc.files, lc.armed = nil, false
	lc.mu.Unlock()
	for _, f := range fs {
		_ = f.Close()
	}
}

// pending returns how many files wait for their batch (tests).
func (lc *laterCloser) pending() int {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return len(lc.files)
}

// closeAtEnd closes a departed client's connection: when the client left (left: its
// Terminate or the end of its stream), a resumed or accepted client's file goes to the
// next batch; any other connection, or any end pgmux decided, is closed now.
func closeAtEnd(nc interface{ Close() error }, left bool) { clientCloser.closeAtEnd(nc, left) }

// closeAtEnd is closeAtEnd with lc's batches.
func (lc *laterCloser) closeAtEnd(nc interface{ Close() error }, left bool) {
	var f *os.File
	switch c := nc.(type) {
	case acceptedConn:
		f = c.f
	case resumedConn:
		f = c.f
	}
	if f == nil || !left {
		_ = nc.Close()
		return
	}
	lc.add(f)
}
