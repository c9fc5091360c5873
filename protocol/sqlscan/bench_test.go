package sqlscan

import (
	"strings"
	"testing"
)

var benchInputs = []struct{ name, sql string }{
	{"pgbench", "SELECT abalance FROM pgbench_accounts WHERE aid = 4217;"},
	{"select", "SELECT id, name, email FROM accounts WHERE id = $1 AND status = 'active' ORDER BY created_at DESC LIMIT 10"},
	{"insert", "INSERT INTO events (kind, payload, at) VALUES ($1, $2, now()) RETURNING id"},
	{"set", "SET application_name = 'billing-worker'"},
	{"do", `DO $$BEGIN LISTEN "jobs"; PERFORM pg_advisory_lock(42); END$$`},
	{"multi", "begin; select pg_advisory_lock(42); update t set a = a + 1 where id = 7; commit"},
	{"large", "INSERT INTO t VALUES " + strings.Repeat("(1, 'abc', 2.5, true), ", 200) + "(0, '', 0, false)"},
}

func BenchmarkMaybeInteresting(b *testing.B) {
	for _, in := range benchInputs {
		b.Run(in.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in.sql)))
			for b.Loop() {
				MaybeInteresting(in.sql)
			}
		})
	}
}

func BenchmarkScan(b *testing.B) {
	for _, in := range benchInputs {
		b.Run(in.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in.sql)))
			for b.Loop() {
				Scan(in.sql)
			}
		})
	}
}

func BenchmarkLexer(b *testing.B) {
	sql := benchInputs[len(benchInputs)-1].sql
	b.ReportAllocs()
	b.SetBytes(int64(len(sql)))
	for b.Loop() {
		lx := NewLexer(sql)
		for lx.Next().Kind != TokEOF {
		}
	}
}
