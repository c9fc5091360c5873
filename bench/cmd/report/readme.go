package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
)

// The README's benchmark block lies between these markers; report -readme rewrites it,
// so every figure in it comes from a run's result files.
const (
	readmeBegin = "<!-- bench/run.sh writes from here: do not edit by hand -->"
	readmeEnd   = "<!-- bench/run.sh writes up to here -->"
)

// readmeRows are the points the README's summary table shows, in order.
var readmeRows = []struct {
	k    key
	name string
}{
	{key{"select", "simple", 1}, "simple, 1 client"},
	{key{"select", "extended", 1}, "extended, 1 client"},
	{key{"select", "simple", 50}, "simple, 50 clients"},
	{key{"select", "extended", 50}, "extended, 50 clients"},
	{key{"select", "simple", 500}, "simple, 500 clients"},
	{key{"select", "extended", 500}, "extended, 500 clients"},
	{key{"select", "extended", 5000}, "extended, 5000 clients"},
}

// metaMap turns key=value pairs into a map.
func metaMap(meta []string) map[string]string {
	m := make(map[string]string, len(meta))
	for _, kv := range meta {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// readmeBlock is the README's benchmark summary for one run: when and at which commit it
// ran, the -S table of pgmux/PgBouncer ratios, idle memory, and the run's plots.
func readmeBlock(points []point, idle []idleResult, meta []string) string {
	m := metaMap(meta)
	var b strings.Builder
	fmt.Fprintf(&b, "Latest full run: `bench/run.sh` on %s at commit `%s` (%s, %s CPUs shared by PostgreSQL, "+
		"pgbench and the pooler; PostgreSQL %s, PgBouncer %s, %s repetitions). The whole table, 1-client "+
		"latency and idle memory are in `bench/results/latest.md`. Ratios are pgmux / PgBouncer, medians "+
		"of alternating runs:\n\n",
		m["date"], m["pgmux"], m["elapsed"], m["cpus"], m["postgres"], m["pgbouncer"], m["reps"])
	b.WriteString("| `-S`, pool 20 | tps ratio | CPU µs/tx pgmux | CPU µs/tx PgBouncer | CPU ratio |\n|---|--:|--:|--:|--:|\n")
	byKey := make(map[key]point, len(points))
	for _, p := range points {
		byKey[p.key] = p
	}
	for _, r := range readmeRows {
		p, ok := byKey[r.k]
		if !ok {
			continue
		}
		mx, g := p.cells["pgmux"], p.cells["pgbouncer"]
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.name, ratio(mx.tps, g.tps, mx.ok, g.ok),
			fmtCPU(mx), fmtCPU(g), ratio(mx.cpu, g.cpu, mx.ok && mx.hasCPU, g.ok && g.hasCPU))
	}
	if p, ok := byKey[key{"select", "prepared", 50}]; ok && p.cells["pgmux"].ok {
		ext := byKey[key{"select", "extended", 50}].cells["pgmux"]
		fmt.Fprintf(&b, "| prepared, 50 clients (pgmux only) | %s tps vs %s extended | %s | – | – |\n",
			thousands(p.cells["pgmux"].tps), thousands(ext.tps), fmtCPU(p.cells["pgmux"]))
	}
	if p, ok := byKey[key{"select", "extended", 5000}]; ok && p.cells["pgmux"].hasSplit && p.cells["pgbouncer"].hasSplit {
		mx, g := p.cells["pgmux"], p.cells["pgbouncer"]
		fmt.Fprintf(&b, "\nThe 5,000-client CPU includes the clients' logins (one per 8 transactions). After every client "+
			"had connected, extended at 5,000 clients cost pgmux %.1f µs a transaction and PgBouncer %.1f (%s); the "+
			"logins before it %.0f and %.0f µs a client (%s).\n",
			mx.cpuTx, g.cpuTx, ratio(mx.cpuTx, g.cpuTx, true, true), mx.cpuLogin, g.cpuLogin, ratio(mx.cpuLogin, g.cpuLogin, true, true))
	}
	var most *idleResult
	for i, r := range idle {
		if r.target == "pgmux" && r.ok && (most == nil || r.clients > most.clients) {
			most = &idle[i]
		}
	}
	if most != nil {
		for _, r := range idle {
			if r.target == "pgbouncer" && r.clients == most.clients && r.ok {
				fmt.Fprintf(&b, "\nIdle clients cost %.1f KB each at %s (PgBouncer: %.1f KB).\n",
					most.bytes/1000, thousands(float64(most.clients)), r.bytes/1000)
			}
		}
	}
	b.WriteString("\n![Throughput](bench/results/tps.png)\n![Pooler CPU per transaction](bench/results/cpu.png)\n" +
		"![p99 latency](bench/results/p99.png)\n![Memory per idle client](bench/results/idle.png)\n")
	return b.String()
}

// thousands formats n with comma separators: 30761 -> "30,761".
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// spliceReadme replaces what lies between the markers in readme with block.
func spliceReadme(readme []byte, block string) ([]byte, error) {
	i := bytes.Index(readme, []byte(readmeBegin))
	j := bytes.Index(readme, []byte(readmeEnd))
	if i < 0 || j < i {
		return nil, errors.New("README has no benchmark markers " + readmeBegin + " ... " + readmeEnd)
	}
	var out bytes.Buffer
	out.Write(readme[:i+len(readmeBegin)])
	out.WriteString("\n" + block)
	out.Write(readme[j:])
	return out.Bytes(), nil
}

// readMeta reads the key=value lines of meta.txt (a run's header, written by report).
func readMeta(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var meta []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			meta = append(meta, line)
		}
	}
	return meta, sc.Err()
}

// provenance is the line the plots carry: which run made them.
func provenance(meta []string) string {
	m := metaMap(meta)
	if m["date"] == "" {
		return ""
	}
	return fmt.Sprintf("bench/run.sh %s, pgmux %s, %s CPUs", m["date"], m["pgmux"], m["cpus"])
}
