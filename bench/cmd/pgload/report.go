package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
)

// summary is the result of a run, as printed.
type summary struct {
	Workload string
	Clients  int
	Seconds  float64
	Tx       int64
	TPS      float64
	P50, P99 float64 // ms
	Max      float64 // ms
	Errors   map[string]int64
	Wrong    int64
	Samples  []string // first error and wrong-result messages
	Extra    []field
	Failures []string // why the run failed; empty when it passed
}

// summary gathers the Stats and the workload's outcome, and judges the run.
func (r *runner) summary(out outcome) *summary {
	lat, errs, samples := r.stats.Snapshot()
	s := &summary{Workload: r.o.workload, Clients: r.o.clients, Seconds: out.seconds,
		Tx: r.stats.tx.Load(), P50: ms(lat.Quantile(0.50)), P99: ms(lat.Quantile(0.99)),
		Max: ms(lat.Max()), Errors: errs, Wrong: r.stats.wrong.Load(), Samples: samples}
	if s.Seconds > 0 {
		s.TPS = float64(s.Tx) / s.Seconds
	}
	r.connMu.Lock()
	if n := r.connects.Count(); n > 0 {
		s.Extra = append(s.Extra,
			field{"connected", int64(n)},
			field{"connect_seconds", round3(r.connTook.Seconds())},
			field{"connect_p50_ms", round3(ms(r.connects.Quantile(0.50)))},
			field{"connect_p99_ms", round3(ms(r.connects.Quantile(0.99)))},
			field{"connect_max_ms", round3(ms(r.connects.Max()))})
	}
	r.connMu.Unlock()
	s.Extra = append(s.Extra, out.extra...)

	var total int64
	for _, n := range errs {
		total += n
	}
	if total > r.o.maxErrors {
		s.Failures = append(s.Failures, fmt.Sprintf("%d errors (-max-errors %d)", total, r.o.maxErrors))
	}
	if s.Wrong > 0 {
		s.Failures = append(s.Failures, fmt.Sprintf("%d wrong results", s.Wrong))
	}
	s.Failures = append(s.Failures, out.failures...)
	return s
}

// round3 rounds to three decimals for printing.
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// writeText prints the summary for a person.
func (s *summary) writeText(w io.Writer) {
	fmt.Fprintf(w, "pgload %s: %d clients, %.2f s\n", s.Workload, s.Clients, s.Seconds)
	fmt.Fprintf(w, "  %-21s %d (%.1f/s)\n", "transactions", s.Tx, s.TPS)
	fmt.Fprintf(w, "  %-21s p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", "latency", s.P50, s.P99, s.Max)
	for _, f := range s.Extra {
		v := fmt.Sprint(f.val)
		if x, ok := f.val.(float64); ok {
			v = fmt.Sprintf("%.3f", x)
		}
		fmt.Fprintf(w, "  %-21s %s\n", strings.ReplaceAll(f.key, "_", " "), v)
	}
	if len(s.Errors) == 0 {
		fmt.Fprintf(w, "  %-21s none\n", "errors")
	}
	for _, k := range slices.Sorted(maps.Keys(s.Errors)) {
		fmt.Fprintf(w, "  %-21s %d  %s\n", "errors", s.Errors[k], k)
	}
	fmt.Fprintf(w, "  %-21s %d\n", "wrong results", s.Wrong)
	for _, m := range s.Samples {
		fmt.Fprintf(w, "    %s\n", m)
	}
	if len(s.Failures) == 0 {
		fmt.Fprintf(w, "  %-21s ok\n", "verdict")
		return
	}
	fmt.Fprintf(w, "  %-21s FAIL: %s\n", "verdict", strings.Join(s.Failures, "; "))
}

// jsonObject is the summary as one flat JSON object: the common fields, then the
// workload's own.
func (s *summary) jsonObject() map[string]any {
	m := map[string]any{
		"workload": s.Workload, "clients": s.Clients, "seconds": round3(s.Seconds),
		"tx": s.Tx, "tps": round3(s.TPS), "p50_ms": round3(s.P50), "p99_ms": round3(s.P99),
		"max_ms": round3(s.Max), "errors": s.Errors, "wrong": s.Wrong,
		"ok": len(s.Failures) == 0, "failures": append([]string{}, s.Failures...),
	}
	for _, f := range s.Extra {
		m[f.key] = f.val
	}
	return m
}

// writeJSON prints the summary as one JSON object on a line.
func (s *summary) writeJSON(w io.Writer) error {
	b, err := json.Marshal(s.jsonObject())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
