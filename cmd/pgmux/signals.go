package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/pgmux/pgmux/proxy"
)

// stopSignals are the signals serveUntilStopped handles, as PgBouncer 1.23+ does.
var stopSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT,
	syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2}

// signalMode maps a shutdown signal to its mode: SIGINT is PgBouncer's safe shutdown
// (SHUTDOWN WAIT_FOR_SERVERS), SIGTERM its super safe one (WAIT_FOR_CLIENTS), SIGQUIT
// the immediate one (SHUTDOWN).
func signalMode(sig os.Signal) (proxy.ShutdownMode, bool) {
	switch sig {
	case syscall.SIGINT:
		return proxy.ShutdownWaitForServers, true
	case syscall.SIGTERM:
		return proxy.ShutdownWaitForClients, true
	case syscall.SIGQUIT:
		return proxy.ShutdownImmediate, true
	}
	return 0, false
}

// serveUntilStopped serves until a signal, the admin console's SHUTDOWN or ctx stops
// the server, and returns once it has stopped. A shutdown requested while one is under
// way becomes immediate, as in PgBouncer. Graceful shutdowns are bounded by
// shutdown_timeout (0: no bound); the clients still connected then get FATAL 57P01.
func serveUntilStopped(ctx context.Context, srv *proxy.Server, console <-chan proxy.ShutdownMode,
	reload func() error, log *zap.Logger) error {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, stopSignals...)
	defer signal.Stop(sigs)
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()

	ctxDone := ctx.Done()
	var stopped chan error        // the shutdown under way, if any
	var cutNow context.CancelFunc // makes it immediate
	defer func() {
		if cutNow != nil {
			cutNow()
		}
	}()
	stop := func(mode proxy.ShutdownMode, why string) {
		if stopped != nil {
			log.Warn(why + " during the shutdown: shutting down immediately, cutting the clients left")
			cutNow()
			return
		}
		timeout := srv.Config().ShutdownTimeout
		sctx, cancel := context.WithCancel(context.Background())
		if mode == proxy.ShutdownImmediate {
			cancel()
		} else if timeout > 0 {
			cancel()
			sctx, cancel = context.WithTimeout(context.Background(), timeout)
		}
		cutNow = cancel
		log.Info(why+": shutting down", zap.Stringer("mode", mode), zap.Duration("shutdown_timeout", timeout),
			zap.String("then", shutdownThen(mode)))
		stopped = make(chan error, 1)
		go func() { stopped <- srv.Stop(sctx, mode) }()
	}
	for {
		select {
		case err := <-served:
			if stopped == nil && err != nil {
				_ = srv.Close()
				return err
			}
			served = nil // the listeners closed for the shutdown under way
		case <-ctxDone:
			ctxDone = nil
			stop(proxy.ShutdownImmediate, "context cancelled")
		case sig := <-sigs:
			if mode, ok := signalMode(sig); ok {
				stop(mode, signalName(sig))
				continue
			}
			switch sig {
			case syscall.SIGHUP:
				_ = reload()
			case syscall.SIGUSR1:
				// The hold is set here, before the next signal is handled: a SIGUSR2
				// right behind lifts it. Only the wait for the servers runs aside.
				wait, err := srv.BeginPause(context.Background())
				if err != nil {
					log.Warn("SIGUSR1: pause", zap.Error(err))
					continue
				}
				log.Info("SIGUSR1: pausing every pool (as PAUSE)")
				go func() {
					if err := wait(); err != nil {
						log.Warn("SIGUSR1: pause", zap.Error(err))
						return
					}
					log.Info("SIGUSR1: paused; every server connection is closed")
				}()
			case syscall.SIGUSR2:
				if err := srv.Resume(); err != nil {
					log.Warn("SIGUSR2: resume", zap.Error(err))
				} else {
					log.Info("SIGUSR2: resumed (as RESUME)")
				}
			}
		case mode := <-console:
			stop(mode, "SHUTDOWN on the admin console")
		case err := <-stopped:
			if err != nil {
				// Clients cut by an immediate shutdown or past shutdown_timeout: said,
				// not an exit failure.
				log.Warn("shutdown cut clients off", zap.Error(err))
			}
			return nil
		}
	}
}

// signalName is the signal's C name for the log ("SIGINT", not Go's "interrupt").
func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGQUIT:
		return "SIGQUIT"
	}
	return sig.String()
}

// shutdownThen says, for the log, what a shutdown waits for.
func shutdownThen(mode proxy.ShutdownMode) string {
	switch mode {
	case proxy.ShutdownWaitForServers:
		return "new clients refused; clients without a server closed; the others closed once their transaction ends"
	case proxy.ShutdownWaitForClients:
		return "new clients refused; connected clients served until they leave"
	}
	return "every client closed now"
}
