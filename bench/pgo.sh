#!/usr/bin/env bash
# Regenerates cmd/pgmux/default.pgo, the CPU profile Go's compiler uses for profile-guided
# optimization (go build picks default.pgo up in the main package's directory: inlining of
# the hot calls, devirtualization). The profile is pgmux's own, taken from its pprof
# endpoint while pgbench drives the workloads the pooler exists for, so the compiler's
# choices follow pgmux's real hot path, not a guess:
#
#   transaction pooling, pool 20, SCRAM-verifier logins (bench/lib.sh, as run.sh);
#   pgbench -S simple, extended and prepared at 50 and 500 clients, tpcb-like at 50,
#   and -C (a login per transaction) at 50: each profiled for BENCH_PGO_SECONDS (default 6)
#   after a warm-up, the profiles merged into one.
#
#   bench/pgo.sh                # rewrites cmd/pgmux/default.pgo
#   BENCH_PGO_OUT=/tmp/x.pgo bench/pgo.sh
#
# Run it after a change of the hot path, then compare instructions per transaction with
# and without the new profile (bench/instr.sh A B: a build with -pgo=off is the baseline).
# The profile is built with PGO off, so it never feeds on its own output.
set -euo pipefail
export HOME="${HOME:-/root}"
export PATH="/usr/local/go/bin:${PATH}:/usr/local/sbin:/usr/sbin:/sbin"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"

SECS=${BENCH_PGO_SECONDS:-6}
OUT=${BENCH_PGO_OUT:-$BENCH_ROOT/cmd/pgmux/default.pgo}

ensure_tools postgresql-15:/usr/lib/postgresql/15/bin/pgbench
trap bench_cleanup EXIT
bench_tmpdir
raise_nofile
BIN=$BENCH_TMP/pgmux-nopgo
build_pgmux "$BIN" nopgo
PGBENCH=$(pg_bindir)/pgbench
start_postgres "$BENCH_TMP/pg" "$(free_port 25432)" 300
pgbench_init 10
CONF=$BENCH_TMP/conf
mkdir -p "$CONF"
scram_logins secretpw "$CONF/userlist.txt"
port=$(free_port 26432)
pport=$(free_port 27432)
write_pooler_ini "$CONF/pgo.ini" "$port" "$CONF/userlist.txt"
start_pooler pgmux "$port" "$BIN" --pprof-addr "127.0.0.1:$pport" "$CONF/pgo.ini"
wait_port "$pport" 20 || die "pprof endpoint did not start"

profiles=()
point() { # NAME PGBENCH-ARGS...
	local name=$1
	shift
	"$PGBENCH" -n "$@" -j 2 -T $((SECS + 4)) -h 127.0.0.1 -p "$port" -U postgres postgres \
		>"$BENCH_TMP/$name.out" 2>&1 </dev/null &
	local pg=$!
	track_pid "$pg"
	sleep 3
	go tool pprof -proto "http://127.0.0.1:$pport/debug/pprof/profile?seconds=$SECS" \
		>"$BENCH_TMP/$name.pprof" 2>"$BENCH_TMP/$name.pprof.log" || die "no profile for $name"
	wait "$pg" || { cat "$BENCH_TMP/$name.out" >&2; die "pgbench $name failed"; }
	profiles+=("$BENCH_TMP/$name.pprof")
	log "$name: $(awk '/^tps = / {printf "%.0f tps", $3}' "$BENCH_TMP/$name.out")"
}
point simple50 -S -M simple -c 50
point extended50 -S -M extended -c 50
point prepared50 -S -M prepared -c 50
point simple500 -S -M simple -c 500
point extended500 -S -M extended -c 500
point tpcb50 -M extended -c 50
point connect50 -S -C -M simple -c 50

go tool pprof -proto "${profiles[@]}" >"$OUT" 2>/dev/null
log "wrote $OUT ($(wc -c <"$OUT") bytes, ${#profiles[@]} profiles merged)"
