package main

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"runtime/metrics"
	"strings"

	"go.uber.org/zap"
)

// servePprof exposes Go's profiler on its own listener, never on the metrics one, with
// /debug/memory: the runtime's memory classes (runtime/metrics /memory/classes/...), the
// breakdown of what the process has mapped that memory work starts from.
func servePprof(addr string, log *zap.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/heap", pprof.Index)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/memory", memoryClasses)
	if err := http.ListenAndServe(addr, mux); err != nil {
		log.Warn("pprof listener stopped", zap.Error(err))
	}
}

// memoryClasses writes every /memory/classes metric and the GC's heap goal, one per line.
func memoryClasses(w http.ResponseWriter, _ *http.Request) {
	var samples []metrics.Sample
	for _, d := range metrics.All() {
		if strings.HasPrefix(d.Name, "/memory/classes/") || d.Name == "/gc/heap/goal:bytes" {
			samples = append(samples, metrics.Sample{Name: d.Name})
		}
	}
	metrics.Read(samples)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, s := range samples {
		if s.Value.Kind() == metrics.KindUint64 {
			fmt.Fprintf(w, "%s %d\n", s.Name, s.Value.Uint64())
		}
	}
}
