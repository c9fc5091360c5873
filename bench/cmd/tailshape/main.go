// Command tailshape says where a pgbench run's latency tail is, from its per-transaction
// logs (pgbench -l): in the clients' first transactions, their last, or the ones between,
// and whether the requests were served in the order they were sent. A pooler's queue for
// a server is first come, first served; a transaction that waited far longer than the
// ones sent around it (overtaken by many sent after it) points at unfair queueing, while
// a tail as long in every round points at throughput (with every client waiting, a
// transaction's latency is about the clients ahead of it over the rate).
//
//	tailshape DIR|FILE...   # one line of name=value per argument
//
// Fields: n, p50 and p99 (ms) of all; first_p99, mid_p99, last_p99: of each client's first
// transaction, of its last, of the others; top_round: which of those holds the most of
// the slowest 1% (first, mid, last); overtaken_p99: the 99th percentile of how many
// transactions sent after one ended before it (0 in a queue served in order, up to
// about the pool's size with answers of unequal length); first_done_ms: when 1% of the
// first transactions had ended, from the run's first send.
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// tx is one transaction of a pgbench log: its client, number, latency and end (µs).
type tx struct {
	client, no int64
	lat, end   int64
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tailshape DIR|FILE...")
		os.Exit(2)
	}
	for _, arg := range os.Args[1:] {
		txs, err := load(arg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tailshape:", err)
			os.Exit(1)
		}
		fmt.Printf("%s %s\n", arg, shape(txs))
	}
}

// load reads the pgbench -l lines of arg, a log file or a directory of them (files whose
// names start with "tx", as bench/run.sh's --log-prefix makes them).
func load(arg string) ([]tx, error) {
	files := []string{arg}
	if st, err := os.Stat(arg); err != nil {
		return nil, err
	} else if st.IsDir() {
		files, err = filepath.Glob(filepath.Join(arg, "tx*"))
		if err != nil {
			return nil, err
		}
	}
	var txs []tx
	for _, f := range files {
		got, err := loadFile(f)
		if err != nil {
			return nil, err
		}
		txs = append(txs, got...)
	}
	if len(txs) == 0 {
		return nil, fmt.Errorf("%s: no transactions", arg)
	}
	return txs, nil
}

// loadFile reads one log: "client tx_no latency_us script_no epoch_s epoch_us" a line.
func loadFile(name string) ([]tx, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var txs []tx
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 {
			continue
		}
		var v [6]int64
		for i := range v {
			if v[i], err = strconv.ParseInt(fs[i], 10, 64); err != nil {
				return nil, fmt.Errorf("%s: %q: %w", name, sc.Text(), err)
			}
		}
		txs = append(txs, tx{client: v[0], no: v[1], lat: v[2], end: v[4]*1e6 + v[5]})
	}
	return txs, sc.Err()
}

// round is where a transaction is in its client's run.
type round uint8

const (
	roundFirst round = iota
	roundMid
	roundLast
)

func (r round) String() string { return [...]string{"first", "mid", "last"}[r] }

// shape computes the fields of the package comment.
func shape(txs []tx) string {
	first, last := map[int64]int64{}, map[int64]int64{}
	for _, t := range txs {
		if n, ok := first[t.client]; !ok || t.no < n {
			first[t.client] = t.no
		}
		if n, ok := last[t.client]; !ok || t.no > n {
			last[t.client] = t.no
		}
	}
	roundOf := func(t tx) round {
		switch {
		case t.no == first[t.client]:
			return roundFirst
		case t.no == last[t.client]:
			return roundLast
		}
		return roundMid
	}
	var all []int64
	var by [3][]int64
	start := int64(-1)
	for _, t := range txs {
		all = append(all, t.lat)
		r := roundOf(t)
		by[r] = append(by[r], t.lat)
		if s := t.end - t.lat; start < 0 || s < start {
			start = s
		}
	}
	p99 := pct(all, 99)
	var top [3]int
	for _, t := range txs {
		if t.lat >= p99 {
			top[roundOf(t)]++
		}
	}
	topRound := roundFirst
	for r := roundMid; r <= roundLast; r++ {
		if top[r] > top[topRound] {
			topRound = r
		}
	}
	var firstEnds []int64
	for _, t := range txs {
		if roundOf(t) == roundFirst {
			firstEnds = append(firstEnds, t.end-start)
		}
	}
	ms := func(us int64) string { return strconv.FormatFloat(float64(us)/1000, 'f', 1, 64) }
	return fmt.Sprintf("n=%d p50=%s p99=%s first_p99=%s mid_p99=%s last_p99=%s top_round=%s overtaken_p99=%d first_done_ms=%s",
		len(txs), ms(pct(all, 50)), ms(p99), ms(pct(by[roundFirst], 99)), ms(pct(by[roundMid], 99)),
		ms(pct(by[roundLast], 99)), topRound, pct(overtaken(txs), 99), ms(pct(firstEnds, 1)))
}

// overtaken returns, for each transaction, how many sent after it ended before it: its
// rank among the ends less its rank among the sends, when positive.
func overtaken(txs []tx) []int64 {
	n := len(txs)
	bySend, byEnd := make([]int, n), make([]int, n)
	for i := range bySend {
		bySend[i], byEnd[i] = i, i
	}
	sort.SliceStable(bySend, func(a, b int) bool {
		return txs[bySend[a]].end-txs[bySend[a]].lat < txs[bySend[b]].end-txs[bySend[b]].lat
	})
	sort.SliceStable(byEnd, func(a, b int) bool { return txs[byEnd[a]].end < txs[byEnd[b]].end })
	sendRank := make([]int, n)
	for r, i := range bySend {
		sendRank[i] = r
	}
	out := make([]int64, n)
	for r, i := range byEnd {
		out[i] = int64(max(r-sendRank[i], 0))
	}
	return out
}

// pct is the p-th percentile of v (nearest rank), 0 for none; v is sorted in place.
func pct(v []int64, p int) int64 {
	if len(v) == 0 {
		return 0
	}
	sort.Slice(v, func(a, b int) bool { return v[a] < v[b] })
	i := (len(v)*p + 50) / 100
	return v[min(max(i, 1), len(v))-1]
}
