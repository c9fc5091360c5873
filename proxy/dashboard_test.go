package proxy_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pgmux/pgmux/config"
	"github.com/pgmux/pgmux/proxy"
)

const dashboardPath = "../deploy/grafana/pgmux-dashboard.json"

// recordingRegisterer is a Registerer that keeps the collectors pgmux registers, so their
// descriptors can be read: a histogram nobody has observed yet is in Describe, not in Gather.
type recordingRegisterer struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registry.Register(c)
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// exportedFamily is one metric family pgmux can export.
type exportedFamily struct {
	histogram bool
	labels    map[string]bool // variable and constant label names
}

// constCollector serves fixed metrics, to read a descriptor's name and labels through a registry.
type constCollector []prometheus.Metric

func (c constCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }
func (c constCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c {
		ch <- m
	}
}

// describeFamily returns the name and label names of d: a gauge built on d with as many
// label values as it takes, gathered through a scratch registry.
func describeFamily(t *testing.T, d *prometheus.Desc) (string, map[string]bool) {
	t.Helper()
	for n := 0; n <= 16; n++ {
		m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, 0, make([]string, n)...)
		if err != nil {
			continue // wrong number of label values (or an invalid descriptor: reported below)
		}
		reg := prometheus.NewRegistry()
		require.NoError(t, reg.Register(constCollector{m}), d.String())
		fams, err := reg.Gather()
		require.NoError(t, err, d.String())
		require.Len(t, fams, 1, d.String())
		labels := map[string]bool{}
		for _, lp := range fams[0].GetMetric()[0].GetLabel() {
			labels[lp.GetName()] = true
		}
		return fams[0].GetName(), labels
	}
	t.Fatalf("cannot build a metric on descriptor %s", d)
	return "", nil
}

// exportedFamilies builds a Server (no listener, no PostgreSQL) and returns every metric
// family its collectors describe, by name.
func exportedFamilies(t *testing.T) map[string]exportedFamily {
	t.Helper()
	rec := &recordingRegisterer{Registry: prometheus.NewRegistry()}
	srv, err := proxy.New(proxy.Options{Config: config.Default(), Registry: rec, Version: "test"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	require.NotEmpty(t, rec.collectors, "proxy.New registered no collectors")

	fams := map[string]exportedFamily{}
	for _, c := range rec.collectors {
		histogram := false
		switch c.(type) {
		case *prometheus.HistogramVec, prometheus.Histogram, interface{ HistogramFamily() }:
			histogram = true
		}
		ch := make(chan *prometheus.Desc)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			name, labels := describeFamily(t, d)
			fams[name] = exportedFamily{histogram: histogram, labels: labels}
		}
	}
	// Whatever a scrape gathers now must be among the described families.
	gathered, err := rec.Gather()
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, f := range gathered {
		require.Contains(t, fams, f.GetName(), "gathered family missing from Describe")
		seen[f.GetName()] = true
	}
	var unseen []string
	for name := range fams {
		if !seen[name] {
			unseen = append(unseen, name)
		}
	}
	sort.Strings(unseen)
	t.Logf("%d families described, %d without samples yet: %s", len(fams), len(unseen), strings.Join(unseen, ", "))
	return fams
}

// dashboardQuery is one PromQL expression of the dashboard and where it stands.
type dashboardQuery struct{ where, expr string }

// dashboardQueries returns every panel target expr (rows' nested panels included) and every
// template variable query.
func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	raw, err := os.ReadFile(dashboardPath)
	require.NoError(t, err)
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash), dashboardPath)

	var out []dashboardQuery
	var walk func(ps []json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, r := range ps {
			var p panel
			require.NoError(t, json.Unmarshal(r, &p))
			for _, tg := range p.Targets {
				require.NotEmpty(t, tg.Expr, "panel %q target %s has no expr", p.Title, tg.RefID)
				out = append(out, dashboardQuery{"panel " + strconv.Quote(p.Title) + " target " + tg.RefID, tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		// The query is a string (older schema) or an object with a query field.
		var q string
		if json.Unmarshal(v.Query, &q) != nil {
			var obj struct {
				Query string `json:"query"`
			}
			require.NoError(t, json.Unmarshal(v.Query, &obj), "variable %s", v.Name)
			q = obj.Query
		}
		require.NotEmpty(t, q, "variable %s has no query", v.Name)
		out = append(out, dashboardQuery{"variable $" + v.Name, q})
	}
	return out
}

var (
	metricRef  = regexp.MustCompile(`pgmux_[a-z0-9_]+`)
	selector   = regexp.MustCompile(`(pgmux_[a-z0-9_]+)\s*\{([^}]*)\}`)
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	labelMatch = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
)

// resolve maps a series name used in PromQL to the family pgmux exports, or explains why
// there is none: histograms are queried by _bucket, _sum and _count, never by their bare name.
func resolve(fams map[string]exportedFamily, name string) (family string, labels map[string]bool, problem string) {
	if f, ok := fams[name]; ok {
		if f.histogram {
			return "", nil, name + " is a histogram: query " + name + "_bucket, _sum or _count"
		}
		return name, f.labels, ""
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if f, ok := fams[base]; ok && f.histogram {
			labels = map[string]bool{}
			for l := range f.labels {
				labels[l] = true
			}
			if suffix == "_bucket" {
				labels["le"] = true
			}
			return base, labels, ""
		}
	}
	return "", nil, name + " is not a metric pgmux exports"
}

// TestDashboardMetrics: every pgmux_ series the Grafana dashboard queries is one pgmux
// exports (described by its collectors, so families without samples yet count), with the
// right suffix, and every label a selector matches on is one the metric has (or a target
// label Prometheus adds).
func TestDashboardMetrics(t *testing.T) {
	fams := exportedFamilies(t)
	queries := dashboardQueries(t)
	require.NotEmpty(t, queries, "the dashboard has no queries")

	used := map[string]bool{}
	var problems []string
	for _, q := range queries {
		names := metricRef.FindAllString(q.expr, -1)
		if len(names) == 0 {
			problems = append(problems, q.where+": no pgmux_ metric in "+q.expr)
		}
		sort.Strings(names)
		for _, name := range slices.Compact(names) {
			fam, _, problem := resolve(fams, name)
			if problem != "" {
				problems = append(problems, q.where+": "+problem)
				continue
			}
			used[fam] = true
		}
		for _, m := range selector.FindAllStringSubmatch(q.expr, -1) {
			_, labels, problem := resolve(fams, m[1])
			if problem != "" {
				continue // reported above
			}
			for _, lm := range labelMatch.FindAllStringSubmatch(quoted.ReplaceAllString(m[2], `""`), -1) {
				if l := lm[1]; !labels[l] && l != "instance" && l != "job" {
					problems = append(problems, q.where+": "+m[1]+" has no label "+l)
				}
			}
		}
	}
	require.Empty(t, problems, "dashboard %s", dashboardPath)

	var unused []string
	for name := range fams {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Logf("metrics the dashboard does not show: %s", strings.Join(unused, ", "))
	}
}
