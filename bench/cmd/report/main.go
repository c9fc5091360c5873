// Command report turns bench/run.sh's raw.tsv and idle.tsv into a Markdown summary
// (latest.md: medians over repetitions, pgmux/PgBouncer ratios) and PNG bar charts.
//
//	report -raw raw.tsv -idle idle.tsv -out bench/results -meta mode=quick -meta reps=3
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

type metaFlags []string

func (m *metaFlags) String() string     { return strings.Join(*m, ",") }
func (m *metaFlags) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run() error {
	rawPath := flag.String("raw", "bench/results/raw.tsv", "per-run results from bench/run.sh")
	idlePath := flag.String("idle", "bench/results/idle.tsv", "idle-client memory results")
	out := flag.String("out", "bench/results", "output directory for latest.md and *.png")
	var meta metaFlags
	flag.Var(&meta, "meta", "key=value shown in the report header (repeatable)")
	flag.Parse()

	runs, err := readRuns(*rawPath)
	if err != nil {
		return err
	}
	idle, err := readIdle(*idlePath)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	points := summarize(runs)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	md := markdown(points, summarizeIdle(idle), meta)
	if err := os.WriteFile(filepath.Join(*out, "latest.md"), []byte(md), 0o644); err != nil {
		return err
	}
	return plots(points, summarizeIdle(idle), *out)
}
