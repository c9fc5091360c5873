package main

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pgmux/pgmux/proxy"
	"github.com/pgmux/pgmux/proxy/procs"
)

// procsControl runs the GOMAXPROCS governor (package proxy/procs) while adaptive_procs is
// on, starting and stopping it as a reload turns the setting on or off.
type procsControl struct {
	max int
	log *zap.Logger
	srv *proxy.Server // told the Ps in use: its new clients go to as many loops

	mu   sync.Mutex
	gov  *procs.Governor
	stop chan struct{} // closes the running governor's Run
	done chan struct{} // closed when that Run has returned (GOMAXPROCS back at max)
}

// newProcsControl returns the control for a process that may use up to max Ps, serving
// srv, with gauges pgmux_procs (Ps in use) and pgmux_procs_max on reg, and
// pgmux_loop_clients: the clients each client loop holds, which shows them following
// the Ps in use (proxy.Server.SetActiveLoops).
func newProcsControl(max int, srv *proxy.Server, log *zap.Logger, reg prometheus.Registerer) *procsControl {
	pc := &procsControl{max: max, srv: srv, log: log}
	for i := range srv.LoopClients() {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pgmux_loop_clients",
			Help:        "Clients a client loop holds: waiting for their next request on it, running one, logging in, or parked idle in its epoll set.",
			ConstLabels: prometheus.Labels{"loop": strconv.Itoa(i)}},
			func() float64 {
				if n := srv.LoopClients(); i < len(n) {
					return float64(n[i])
				}
				return 0
			}))
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pgmux_procs",
			Help: "Go processors (GOMAXPROCS) pgmux runs now: adaptive_procs sizes it to the CPU load, up to pgmux_procs_max."},
			func() float64 { return float64(pc.procs()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pgmux_procs_max",
			Help: "The most Go processors pgmux uses: GOMAXPROCS as the process started (the environment variable, else the cores or the CPU limit)."},
			func() float64 { return float64(pc.max) }),
	)
	return pc
}

// procs is the number of Ps in use.
func (pc *procsControl) procs() int {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.gov == nil {
		return pc.max
	}
	return pc.gov.Procs()
}

// set starts the governor (on) or stops it and gives back every P (off), as the
// configuration says.
func (pc *procsControl) set(on bool) { pc.switchTo(on, true) }

// switchTo is set; logOff says whether turning the governor off is logged (a reload
// turning adaptive_procs off is; the process stopping is not).
func (pc *procsControl) switchTo(on, logOff bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if on == (pc.gov != nil) || pc.max <= 1 {
		return
	}
	if !on {
		close(pc.stop)
		<-pc.done
		pc.gov, pc.stop, pc.done = nil, nil, nil
		if logOff {
			pc.log.Info("adaptive_procs off: running every processor", zap.Int("procs", pc.max))
		}
		return
	}
	gov := procs.New(pc.max, func(from, to int, usage float64) {
		pc.srv.SetActiveLoops(to)
		pc.log.Debug("processors resized", zap.Int("from", from), zap.Int("to", to), zap.Float64("cpu_cores_used", usage))
	})
	stop, done := make(chan struct{}), make(chan struct{})
	pc.gov, pc.stop, pc.done = gov, stop, done
	go func() {
		defer close(done)
		gov.Run(stop, procs.Interval)
	}()
}

// close stops the governor, if it runs, quietly: adaptive_procs is not being turned off,
// the process is stopping.
func (pc *procsControl) close() { pc.switchTo(false, false) }
