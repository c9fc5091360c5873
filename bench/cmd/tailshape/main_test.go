package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeLog writes txs as pgbench -l lines into dir/tx.1 and returns dir.
func writeLog(t *testing.T, txs []tx) string {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	for _, x := range txs {
		fmt.Fprintf(&b, "%d %d %d 0 %d %d\n", x.client, x.no, x.lat, x.end/1e6, x.end%1e6)
	}
	if err := os.WriteFile(filepath.Join(dir, "tx.1"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// field returns the value of name in a shape line.
func field(line, name string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v
		}
	}
	return ""
}

func TestShape(t *testing.T) {
	const clients, rounds = 100, 4
	// In order: transactions sent 10 ms apart, each served in the order sent, those of
	// the last round slower (2 ms against 1).
	var fair []tx
	for r := range rounds {
		for c := range clients {
			i := int64(r*clients + c)
			send, lat := int64(1e9)+i*10_000, int64(1000)
			if r == rounds-1 {
				lat = 2000
			}
			fair = append(fair, tx{client: int64(c), no: int64(r + 1), lat: lat, end: send + lat})
		}
	}
	// Out of order: the second transactions of the first ten clients are served after
	// every other.
	unfair := append([]tx(nil), fair...)
	for i := range unfair {
		if unfair[i].client < 10 && unfair[i].no == 2 {
			unfair[i].lat += 10_000_000
			unfair[i].end += 10_000_000
		}
	}
	for _, tc := range []struct {
		name      string
		txs       []tx
		overtaken bool
		top       string
	}{
		{"in order", fair, false, "last"},
		{"ten overtaken", unfair, true, "mid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			txs, err := load(writeLog(t, tc.txs))
			if err != nil {
				t.Fatal(err)
			}
			line := shape(txs)
			if got := field(line, "n"); got != fmt.Sprint(clients*rounds) {
				t.Errorf("n=%s in %q", got, line)
			}
			if got := field(line, "top_round"); got != tc.top {
				t.Errorf("top_round=%s, want %s, in %q", got, tc.top, line)
			}
			if got := field(line, "overtaken_p99"); (got != "0") != tc.overtaken {
				t.Errorf("overtaken_p99=%s in %q", got, line)
			}
		})
	}
	// The first overtaken transaction: every one sent after it ended before it.
	txs, _ := load(writeLog(t, unfair))
	most := int64(0)
	for _, n := range overtaken(txs) {
		most = max(most, n)
	}
	if want := int64(clients*rounds - clients - 10); most != want { // all but those sent before it and the other nine
		t.Errorf("most overtaken %d, want %d", most, want)
	}
}
