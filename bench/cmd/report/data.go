package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Targets in the order runs alternate and columns appear.
var targets = []string{"pgmux", "pgbouncer", "direct"}

// runRow is one pgbench invocation (a row of raw.tsv).
type runRow struct {
	target, workload, mode string
	clients, rep           int
	tps, p50, p99, cpu     float64
	hasCPU                 bool
	status                 string
	// cpuTx and cpuLogin split cpu at the moment every client had connected (hasSplit):
	// per transaction after it, per client before it (older runs have neither).
	cpuTx, cpuLogin float64
	hasSplit        bool
}

// key names one benchmark point: workload, query mode and client count.
type key struct {
	workload, mode string
	clients        int
}

func (k key) label() string {
	w := map[string]string{"select": "-S", "tpcb": "tpcb", "churn": "-C -S", "paced": "-S -R"}[k.workload]
	if w == "" {
		w = k.workload
	}
	return fmt.Sprintf("%s %s c=%d", w, k.mode, k.clients)
}

// cell is the median of one target's repetitions at one point.
type cell struct {
	ok                 bool
	na                 string // reason when the point cannot run for this target
	n                  int    // successful repetitions
	failed             int
	tps, p50, p99, cpu float64
	hasCPU             bool
	cpuTx, cpuLogin    float64 // medians of the runs' split (runRow), when hasSplit
	hasSplit           bool
}

type point struct {
	key   key
	cells map[string]cell
}

func readTSV(path string) ([]map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var header []string
	var rows []map[string]string
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if header == nil {
			header = fields
			continue
		}
		row := map[string]string{}
		for i, h := range header {
			if i < len(fields) {
				row[h] = fields[i]
			}
		}
		rows = append(rows, row)
	}
	return rows, sc.Err()
}

func num(s string) float64 {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0
	}
	return v
}

func readRuns(path string) ([]runRow, error) {
	rows, err := readTSV(path)
	if err != nil {
		return nil, err
	}
	runs := make([]runRow, 0, len(rows))
	for _, r := range rows {
		runs = append(runs, runRow{
			target: r["target"], workload: r["workload"], mode: r["mode"],
			clients: int(num(r["clients"])), rep: int(num(r["rep"])),
			tps: num(r["tps"]), p50: num(r["p50_ms"]), p99: num(r["p99_ms"]),
			cpu: num(r["cpu_us_per_tx"]), hasCPU: strings.TrimSpace(r["cpu_us_per_tx"]) != "",
			status: r["status"],
			cpuTx:  num(r["cpu_us_per_tx_after_logins"]), cpuLogin: num(r["cpu_us_per_login"]),
			hasSplit: strings.TrimSpace(r["cpu_us_per_tx_after_logins"]) != "",
		})
	}
	return runs, nil
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summarize groups runs by point (in first-seen order) and takes per-target medians.
func summarize(runs []runRow) []point {
	var order []key
	groups := map[key]map[string][]runRow{}
	for _, r := range runs {
		k := key{r.workload, r.mode, r.clients}
		if groups[k] == nil {
			groups[k] = map[string][]runRow{}
			order = append(order, k)
		}
		groups[k][r.target] = append(groups[k][r.target], r)
	}
	points := make([]point, 0, len(order))
	for _, k := range order {
		p := point{key: k, cells: map[string]cell{}}
		for t, rs := range groups[k] {
			var c cell
			var tps, p50, p99, cpu, cpuTx, cpuLogin []float64
			for _, r := range rs {
				switch {
				case strings.HasPrefix(r.status, "n/a"):
					c.na = strings.TrimSpace(strings.TrimPrefix(r.status, "n/a:"))
				case r.status == "ok":
					tps, p50, p99 = append(tps, r.tps), append(p50, r.p50), append(p99, r.p99)
					if r.hasCPU {
						cpu = append(cpu, r.cpu)
					}
					if r.hasSplit {
						cpuTx, cpuLogin = append(cpuTx, r.cpuTx), append(cpuLogin, r.cpuLogin)
					}
				default:
					c.failed++
				}
			}
			c.n = len(tps)
			c.ok = c.n > 0
			c.tps, c.p50, c.p99 = median(tps), median(p50), median(p99)
			c.cpu, c.hasCPU = median(cpu), len(cpu) > 0
			c.cpuTx, c.cpuLogin, c.hasSplit = median(cpuTx), median(cpuLogin), len(cpuTx) > 0
			p.cells[t] = c
		}
		points = append(points, p)
	}
	return points
}

// idleResult is the median bytes per idle client for one target and client count.
type idleResult struct {
	target  string
	clients int
	bytes   float64
	ok      bool
}

func readIdle(path string) ([]map[string]string, error) { return readTSV(path) }

func summarizeIdle(rows []map[string]string) []idleResult {
	type k struct {
		t string
		n int
	}
	var order []k
	vals := map[k][]float64{}
	seen := map[k]bool{}
	for _, r := range rows {
		kk := k{r["target"], int(num(r["clients"]))}
		if !seen[kk] {
			seen[kk] = true
			order = append(order, kk)
		}
		if r["status"] == "ok" {
			vals[kk] = append(vals[kk], num(r["bytes_per_client"]))
		}
	}
	out := make([]idleResult, 0, len(order))
	for _, kk := range order {
		out = append(out, idleResult{kk.t, kk.n, median(vals[kk]), len(vals[kk]) > 0})
	}
	return out
}
