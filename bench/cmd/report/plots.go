package main

import (
	"image/color"
	"math"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

var colors = map[string]color.Color{
	"pgmux":     color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"pgbouncer": color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	"direct":    color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
}

var names = map[string]string{"pgmux": "pgmux", "pgbouncer": "PgBouncer", "direct": "direct"}

// series is one target's bar heights, one per label; missing points are 0.
type series struct {
	target string
	values plotter.Values
}

func bars(title, ylabel string, labels []string, ss []series, path, stamp string) error {
	p := plot.New()
	p.Title.Text = title
	if stamp != "" {
		p.Title.Text += "\n" + stamp
	}
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	w := vg.Points(14)
	for i, s := range ss {
		bc, err := plotter.NewBarChart(s.values, w)
		if err != nil {
			return err
		}
		bc.LineStyle.Width = 0
		bc.Color = colors[s.target]
		bc.Offset = w * vg.Length(float64(i)-float64(len(ss)-1)/2)
		p.Add(bc)
		p.Legend.Add(names[s.target], bc)
	}
	p.NominalX(labels...)
	p.Y.Min = 0
	p.Y.Max *= 1.2 // headroom for the legend
	p.X.Tick.Label.Rotation = math.Pi / 6
	p.X.Tick.Label.XAlign = -0.9
	p.X.Tick.Label.YAlign = -0.6
	width := vg.Length(len(labels))*w*vg.Length(len(ss)+1) + 3*vg.Inch
	if width < 6*vg.Inch {
		width = 6 * vg.Inch
	}
	return p.Save(width, 4*vg.Inch, path)
}

// plots draws tps.png, p99.png, cpu.png and idle.png into dir; stamp (the run's date and
// commit) goes under each title.
func plots(points []point, idle []idleResult, dir, stamp string) error {
	bars := func(title, ylabel string, labels []string, ss []series, path string) error {
		return bars(title, ylabel, labels, ss, path, stamp)
	}
	labels := make([]string, len(points))
	for i, p := range points {
		labels[i] = p.key.label()
	}
	metric := func(ts []string, f func(cell) (float64, bool)) []series {
		var ss []series
		for _, t := range ts {
			vs := make(plotter.Values, len(points))
			seen := false
			for i, p := range points {
				if v, ok := f(p.cells[t]); ok {
					vs[i], seen = v, true
				}
			}
			if seen {
				ss = append(ss, series{t, vs})
			}
		}
		return ss
	}
	if len(points) > 0 {
		if err := bars("Throughput (median, higher is better)", "transactions/s", labels,
			metric(targets, func(c cell) (float64, bool) { return c.tps, c.ok }), filepath.Join(dir, "tps.png")); err != nil {
			return err
		}
		if err := bars("p99 latency (median of runs, lower is better)", "ms", labels,
			metric(targets, func(c cell) (float64, bool) { return c.p99, c.ok }), filepath.Join(dir, "p99.png")); err != nil {
			return err
		}
		if err := bars("Pooler CPU per transaction (lower is better)", "µs of utime+stime", labels,
			metric(targets[:2], func(c cell) (float64, bool) { return c.cpu, c.ok && c.hasCPU }), filepath.Join(dir, "cpu.png")); err != nil {
			return err
		}
	}
	if len(idle) == 0 {
		return nil
	}
	var ns []int
	idx := map[int]int{}
	for _, r := range idle {
		if _, ok := idx[r.clients]; !ok {
			idx[r.clients] = len(ns)
			ns = append(ns, r.clients)
		}
	}
	var ss []series
	for _, t := range targets[:2] {
		vs := make(plotter.Values, len(ns))
		for _, r := range idle {
			if r.target == t && r.ok {
				vs[idx[r.clients]] = math.Max(r.bytes, 0)
			}
		}
		ss = append(ss, series{t, vs})
	}
	idleLabels := make([]string, len(ns))
	for i, n := range ns {
		idleLabels[i] = itoa(n) + " idle clients"
	}
	return bars("Pooler memory per idle client (lower is better)", "bytes (VmRSS delta / clients)", idleLabels, ss,
		filepath.Join(dir, "idle.png"))
}

func itoa(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}
