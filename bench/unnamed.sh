#!/usr/bin/env bash
# PostgreSQL's own CPU per transaction behind pgmux with cache_unnamed_statements on,
# behind PgBouncer, and behind pgmux with it off: pgbench -S -M extended (every query a
# Parse of the unnamed statement), pool size 20, 50 and 500 clients, the three targets
# alternating within every repetition.
#
#   bench/unnamed.sh                 # 5 repetitions, medians and spread
#   bench/unnamed.sh --reps 3
#   bench/unnamed.sh --syscalls      # also count the syscalls of PostgreSQL's backends
#                                    # per transaction behind each pooler (strace -c)
#   bench/unnamed.sh --unique        # also: pgmux's own CPU per query, on and off, for a
#                                    # workload whose every text is new (pgload -unique)
#   BENCH_CLIENTS="50" bench/unnamed.sh
#
# Every pooler authenticates clients with SCRAM against a userlist holding the server's
# own SCRAM verifier (pg_authid), and logs in to PostgreSQL with it. Logins are kept out
# of the figures: each pgbench run lasts DUR seconds, and CPU and transactions are
# counted only between WIN0 and WIN1 seconds after its start, once every client has
# logged in. PostgreSQL's CPU is the postmaster's utime+stime+cutime+cstime plus
# utime+stime of its live children (from /proc, at both ends of the window); the window's
# transactions are counted from pgbench's per-transaction log (-l) by their end time.
# Output: a table on stdout and bench/results/scratch/unnamed.tsv (one row per run).
set -euo pipefail
export HOME="${HOME:-/root}"
export PATH="/usr/local/go/bin:${PATH}:/usr/local/sbin:/usr/sbin:/sbin"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"

REPS=5
SYSCALLS=0
UNIQUE=0
while (($# > 0)); do
	case $1 in
	--reps) REPS=$2; shift ;;
	--syscalls) SYSCALLS=1 ;;
	--unique) UNIQUE=1 ;;
	--keep) BENCH_KEEP_TMP=1 ;;
	-h | --help) sed -n '2,23p' "$0"; exit 0 ;;
	*) die "unknown argument $1 (try --help)" ;;
	esac
	shift
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] && ((REPS <= 20)) || die "--reps must be 1..20"
CLIENTS=(50 500)
[[ -n ${BENCH_CLIENTS:-} ]] && read -ra CLIENTS <<<"$BENCH_CLIENTS"
SCALE=10 POOL_SIZE=20 PG_MAX_CONN=300
DUR=${BENCH_DUR:-16} WIN0=${BENCH_WIN0:-5} WIN1=${BENCH_WIN1:-14}
TARGETS=(pgmux-on pgbouncer pgmux-off)
PASSWORD=bench-secret

command -v go >/dev/null || die "go not found on PATH"
ensure_tools postgresql-15:/usr/lib/postgresql/15/bin/pgbench pgbouncer:/usr/sbin/pgbouncer
PGBIN=$(pg_bindir)
PGBENCH=$PGBIN/pgbench
PGBOUNCER=/usr/sbin/pgbouncer
((SYSCALLS)) && { command -v strace >/dev/null || die "--syscalls needs strace"; }
raise_nofile
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
bench_tmpdir
RESULTS=${BENCH_OUT:-$BENCH_ROOT/bench/results/scratch}
mkdir -p "$RESULTS"
RAW=$BENCH_TMP/unnamed.tsv
printf 'target\tclients\trep\ttps\tpg_us_per_tx\tpooler_us_per_tx\ttx\tstatus\n' >"$RAW"

log "building pgmux"
mkdir -p "$BENCH_TMP/bin"
if [[ -n ${PGMUX_BIN:-} ]]; then cp "$PGMUX_BIN" "$BENCH_TMP/bin/pgmux"; else build_pgmux "$BENCH_TMP/bin/pgmux"; fi
((UNIQUE)) && (cd "$BENCH_ROOT/bench" && go build -o "$BENCH_TMP/bin/pgload" ./cmd/pgload)

PG_PORT=$(free_port)
PGB_PORT=$(free_port "$PG_PORT")
ON_PORT=$(free_port "$PG_PORT" "$PGB_PORT")
OFF_PORT=$(free_port "$PG_PORT" "$PGB_PORT" "$ON_PORT")
log "PostgreSQL on 127.0.0.1:$PG_PORT"
start_postgres "$BENCH_TMP/pg" "$PG_PORT" "$PG_MAX_CONN"
CONF=$BENCH_TMP/conf
mkdir -p "$CONF"
scram_logins "$PASSWORD" "$CONF/userlist.txt"
log "pgbench -i -s $SCALE"
"$PGBENCH" -i -s "$SCALE" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres postgres </dev/null >"$BENCH_TMP/init.log" 2>&1 ||
	{ cat "$BENCH_TMP/init.log" >&2; die "pgbench -i failed"; }

# The shared settings (write_pooler_ini in bench/lib.sh; pgmux's max_prepared_statements is
# 200 by default; Debian 12's PgBouncer predates the setting).
write_pooler_ini "$CONF/pgbouncer.ini" "$PGB_PORT" "$CONF/userlist.txt"
write_pooler_ini "$CONF/pgmux-on.ini" "$ON_PORT" "$CONF/userlist.txt" "cache_unnamed_statements = 1"
write_pooler_ini "$CONF/pgmux-off.ini" "$OFF_PORT" "$CONF/userlist.txt" "cache_unnamed_statements = 0"
start_pooler pgbouncer "$PGB_PORT" "$PGBOUNCER" "$CONF/pgbouncer.ini"
PGB_PID=$POOLER_PID
start_pooler pgmux-on "$ON_PORT" "$BENCH_TMP/bin/pgmux" "$CONF/pgmux-on.ini"
ON_PID=$POOLER_PID
start_pooler pgmux-off "$OFF_PORT" "$BENCH_TMP/bin/pgmux" "$CONF/pgmux-off.ini"
OFF_PID=$POOLER_PID
PGB_VERSION=$("$PGBOUNCER" --version | awk 'NR==1 {print $2}')
log "PgBouncer $PGB_VERSION :$PGB_PORT, pgmux on :$ON_PORT, pgmux off :$OFF_PORT"

port_of() { case $1 in pgmux-on) echo "$ON_PORT" ;; pgmux-off) echo "$OFF_PORT" ;; pgbouncer) echo "$PGB_PORT" ;; esac; }
pid_of() { case $1 in pgmux-on) echo "$ON_PID" ;; pgmux-off) echo "$OFF_PID" ;; pgbouncer) echo "$PGB_PID" ;; esac; }


# run_point TARGET CLIENTS REP: one pgbench run; appends a row to $RAW.
run_point() {
	local target=$1 clients=$2 rep=$3 port pid logdir bpid start t0 t1 pg0 pg1 po0 po1 tx status=ok
	port=$(port_of "$target")
	pid=$(pid_of "$target")
	logdir=$BENCH_TMP/pglog/$target-$clients-$rep
	mkdir -p "$logdir"
	start=$(now_us)
	timeout $((DUR + 120)) "$PGBENCH" -n -S -M extended -c "$clients" -j 2 -T "$DUR" -l --log-prefix="$logdir/tx" \
		-h 127.0.0.1 -p "$port" -U postgres postgres </dev/null >"$logdir/out" 2>&1 &
	bpid=$!
	track_pid "$bpid"
	sleep_until "$start" "$WIN0"
	t0=$(now_us) pg0=$(pg_cpu_ticks "$PG_PID") po0=$(proc_cpu_ticks "$pid")
	sleep_until "$start" "$WIN1"
	t1=$(now_us) pg1=$(pg_cpu_ticks "$PG_PID") po1=$(proc_cpu_ticks "$pid")
	wait "$bpid" || status=fail
	if ! grep -q '^number of transactions actually processed' "$logdir/out" ||
		grep -Eq '^number of failed transactions: [1-9]' "$logdir/out"; then status=fail; fi
	# -l lines: client tx_no latency_us script_no epoch_s epoch_us (the transaction's end)
	tx=$(cat "$logdir"/tx* | awk -v a="$t0" -v b="$t1" '{t = $5 * 1000000 + $6; if (t >= a && t < b) n++} END {print n + 0}')
	((tx > 0)) || status=fail
	local tps pgus pous
	tps=$(awk -v n="$tx" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / ((b - a) / 1e6)}')
	pgus=$(us_per_tx $((pg1 - pg0)) "$tx")
	pous=$(us_per_tx $((po1 - po0)) "$tx")
	[[ $status == ok ]] || tail -n 5 "$logdir/out" >&2
	[[ ${BENCH_KEEP_TMP:-0} == 1 ]] || rm -rf "$logdir"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$clients" "$rep" "$tps" "$pgus" "$pous" "$tx" "$status" >>"$RAW"
	printf '    %-9s c=%-4s rep %s: tps %7s  postgres %6s us/tx  pooler %6s us/tx  (%s tx) %s\n' \
		"$target" "$clients" "$rep" "$tps" "$pgus" "$pous" "$tx" "$status" >&2
}

# syscall_point TARGET: strace -c on PostgreSQL's backends during a fixed run through the
# pooler; prints the calls per transaction of the busiest syscalls.
syscall_point() {
	local target=$1 port pids args=() spid out=$BENCH_TMP/strace-$1.txt tx=20000 p
	port=$(port_of "$target")
	# warm: every pool connection open
	"$PGBENCH" -n -S -M extended -c 20 -j 2 -t 200 -h 127.0.0.1 -p "$port" -U postgres postgres </dev/null >/dev/null 2>&1
	pids=$(pgrep -P "$PG_PID")
	for p in $pids; do args+=(-p "$p"); done
	strace -c -o "$out" "${args[@]}" 2>/dev/null &
	spid=$!
	track_pid "$spid"
	sleep 1
	"$PGBENCH" -n -S -M extended -c 20 -j 2 -t $((tx / 20)) -h 127.0.0.1 -p "$port" -U postgres postgres </dev/null >/dev/null 2>&1
	kill -INT "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	printf '    %-9s syscalls per transaction in PostgreSQL backends:' "$target" >&2
	awk -v n="$tx" '$NF ~ /^(recvfrom|sendto|epoll_wait|read|write|pread64|lseek|kill|futex)$/ && $4 ~ /^[0-9]+$/ {printf " %s %.2f", $NF, $4 / n}' "$out" >&2
	echo >&2
}

if ((SYSCALLS)); then
	log "syscalls of PostgreSQL's backends (strace -c, 20 clients, 20000 tx)"
	for target in "${TARGETS[@]}"; do syscall_point "$target"; done
fi

# unique_point TARGET REP: 50 pgx clients in exec mode (the unnamed statement), every
# text new; pgmux's CPU per query over the whole run.
unique_point() {
	local target=$1 rep=$2 port pid c0 c1 out tx
	port=$(port_of "$target")
	pid=$(pid_of "$target")
	c0=$(proc_cpu_ticks "$pid")
	out=$("$BENCH_TMP/bin/pgload" -url "postgres://postgres:$PASSWORD@127.0.0.1:$port/postgres?sslmode=disable" \
		-workload select -exec-mode exec -unique -clients 50 -duration 8s -json 2>/dev/null </dev/null) || true
	c1=$(proc_cpu_ticks "$pid")
	tx=$(grep -o '"tx":[0-9]*' <<<"$out" | cut -d: -f2)
	tx=${tx:-0}
	printf '%s\tunique\t%s\t%s\t\t%s\t%s\t%s\n' "$target" "$rep" \
		"$(grep -o '"tps":[0-9.]*' <<<"$out" | cut -d: -f2)" \
		"$(us_per_tx $((c1 - c0)) "$tx")" \
		"$tx" "$(grep -q '"ok":true' <<<"$out" && echo ok || echo fail)" | tee -a "$RAW" >&2
}
if ((UNIQUE)); then
	log "every text new: pgload select -exec-mode exec -unique, 50 clients, pgmux on and off"
	for ((rep = 1; rep <= REPS; rep++)); do
		for target in pgmux-on pgmux-off; do unique_point "$target" "$rep"; done
	done
fi

for clients in "${CLIENTS[@]}"; do
	log "pgbench -S -M extended, $clients clients, pool $POOL_SIZE, $REPS reps"
	for ((rep = 1; rep <= REPS; rep++)); do
		for target in "${TARGETS[@]}"; do run_point "$target" "$clients" "$rep"; done
	done
done
cp "$RAW" "$RESULTS/unnamed.tsv"

# Medians per target and client count, with min-max spread, and the ratios to PgBouncer.
awk -F'\t' 'NR > 1 && $8 == "ok" {k = $1 SUBSEP $2; n[k]++; tps[k, n[k]] = $4; pg[k, n[k]] = $5; po[k, n[k]] = $6; cl[$2] = 1}
function med(a, k, m,   i, j, t, v) {
	for (i = 1; i <= m; i++) v[i] = a[k, i]
	for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] + 0 < v[i] + 0) {t = v[i]; v[i] = v[j]; v[j] = t}
	lo = v[1]; hi = v[m]
	return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
END {
	split("pgmux-on pgbouncer pgmux-off", T, " ")
	for (c in cl) {
		kb = "pgbouncer" SUBSEP c
		if (!(kb in n)) continue
		bt = med(tps, kb, n[kb]); bp = med(pg, kb, n[kb])
		for (i = 1; i <= 3; i++) {
			k = T[i] SUBSEP c
			if (!(k in n)) continue
			mt = med(tps, k, n[k]); tl = lo; th = hi
			mp = med(pg, k, n[k]); pl = lo; ph = hi
			mo = med(po, k, n[k])
			printf "| %s | %s | %.0f (%.0f-%.0f) | %.1f (%.1f-%.1f) | %.1f | %.2fx | %.2fx |\n", c, T[i], mt, tl, th, mp, pl, ph, mo, mp / bp, mt / bt
		}
	}
}' "$RAW" | sort -t'|' -k2,2n -s >"$BENCH_TMP/table.md"
{
	echo "| clients | target | tps (median, min-max) | PostgreSQL CPU us/tx (median, min-max) | pooler CPU us/tx | PG CPU vs PgBouncer | tps vs PgBouncer |"
	echo "|---|---|---|---|---|---|---|"
	cat "$BENCH_TMP/table.md"
} | tee "$RESULTS/unnamed.md"
log "raw rows in $RESULTS/unnamed.tsv"
