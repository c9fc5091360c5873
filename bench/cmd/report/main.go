// Command report turns bench/run.sh's raw.tsv and idle.tsv into a Markdown summary
// (latest.md: medians over repetitions, pgmux/PgBouncer ratios) and PNG bar charts, and
// with -readme rewrites the README's benchmark block from them. The run's header (date,
// commit, ...) is kept in meta.txt beside the results, so a later report without -meta
// renders the same run again.
//
//	report -raw raw.tsv -idle idle.tsv -out bench/results -meta mode=quick -meta reps=3
//	report -out bench/results -readme README.md      # re-render from the stored run
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
	flag.Var(&meta, "meta", "key=value shown in the report header (repeatable); default: out/meta.txt")
	readme := flag.String("readme", "", "README.md whose benchmark block is rewritten from this run")
	flag.Parse()
	metaPath := filepath.Join(*out, "meta.txt")
	if len(meta) == 0 {
		stored, err := readMeta(metaPath)
		if err != nil {
			return fmt.Errorf("no -meta and no stored header: %w", err)
		}
		meta = stored
	}

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
	if err := os.WriteFile(metaPath, []byte(strings.Join(meta, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	md := markdown(points, summarizeIdle(idle), meta)
	if err := os.WriteFile(filepath.Join(*out, "latest.md"), []byte(md), 0o644); err != nil {
		return err
	}
	if *readme != "" {
		text, err := os.ReadFile(*readme)
		if err != nil {
			return err
		}
		text, err = spliceReadme(text, readmeBlock(points, summarizeIdle(idle), meta))
		if err != nil {
			return fmt.Errorf("%s: %w", *readme, err)
		}
		if err := os.WriteFile(*readme, text, 0o644); err != nil {
			return err
		}
	}
	return plots(points, summarizeIdle(idle), *out, provenance(meta))
}
