#!/usr/bin/env bash
# What an event loop buys in Go (issue 14): CPU per transaction of the minimal relay
# bench/cmd/relayeval with each of its I/O drivers, beside PgBouncer and pgmux, on
# pgbench -S, pool 20, the targets alternating within every repetition.
#
#   bench/relayeval.sh                  # 3 repetitions, -M simple and extended, 50 and 500 clients
#   bench/relayeval.sh --reps 5 --keep
#   BENCH_MODES=simple BENCH_CLIENTS=50 BENCH_TARGETS="pgbouncer re-epoll" bench/relayeval.sh
#   PGMUX_BIN=/path/to/pgmux bench/relayeval.sh
#   bench/relayeval.sh --syscalls       # only: each pooler's syscalls per transaction (strace -c
#                                       # on all its threads, -M simple, 50 clients, 10000 tx)
#   bench/relayeval.sh --instr          # only: each pooler's user-space instructions per
#                                       # transaction under callgrind, as bench/instr.sh counts
#                                       # them (BENCH_TX, default 4000; 50 clients)
#
# Targets: pgbouncer (Debian's /usr/sbin/pgbouncer), pgmux (./cmd/pgmux of this tree or
# PGMUX_BIN), re-goroutine (a goroutine per connection), re-epoll (own epoll loops,
# GOMAXPROCS=2), re-epoll1 (GOMAXPROCS=1: one loop), re-gnet (gnet loops); not run unless
# named: re-epollpark (epoll loops parked in Go's netpoller when idle), re-epollraw (socket
# reads and writes with RawSyscall). PostgreSQL
# takes SCRAM logins only; PgBouncer and pgmux check clients against the server's own
# verifier (bench/lib.sh scram_logins) and log in with the client's key; relayeval does
# no client authentication at all (its logins cost less), and logs its 20 servers in at
# start. Logins are kept out of the figures anyway: each pgbench run lasts DUR seconds and
# CPU (utime and stime of the pooler, /proc/PID/stat) and transactions (pgbench's
# per-transaction log, by end time) are counted only between WIN0 and WIN1 seconds after
# its start; a run where some client had not finished a transaction by WIN0 is marked
# "late". Output: a table of medians on stdout, one row per run in
# bench/results/scratch/relayeval.tsv (BENCH_OUT to change).
set -euo pipefail
export HOME="${HOME:-/root}"
export PATH="/usr/local/go/bin:${PATH}:/usr/local/sbin:/usr/sbin:/sbin"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"

REPS=3
SYSCALLS=0
INSTR=0
while (($# > 0)); do
	case $1 in
	--reps) REPS=$2; shift ;;
	--syscalls) SYSCALLS=1 ;;
	--instr) INSTR=1 ;;
	--keep) BENCH_KEEP_TMP=1 ;;
	-h | --help) sed -n '2,29p' "$0"; exit 0 ;;
	*) die "unknown argument $1 (try --help)" ;;
	esac
	shift
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] && ((REPS <= 20)) || die "--reps must be 1..20"
read -ra MODES <<<"${BENCH_MODES:-simple extended}"
read -ra CLIENTS <<<"${BENCH_CLIENTS:-50 500}"
read -ra TARGETS <<<"${BENCH_TARGETS:-pgbouncer pgmux re-goroutine re-epoll re-epoll1 re-gnet}"
OUT=${BENCH_OUT:-$BENCH_ROOT/bench/results/scratch}
POOL_SIZE=20
PASSWORD=bench-secret

command -v go >/dev/null || die "go not found on PATH"
ensure_tools postgresql-15:/usr/lib/postgresql/15/bin/pgbench pgbouncer:/usr/sbin/pgbouncer
PGBENCH=$(pg_bindir)/pgbench
raise_nofile
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
bench_tmpdir
mkdir -p "$OUT"
RAW=$OUT/relayeval.tsv

log "building relayeval and pgmux"
mkdir -p "$BENCH_TMP/bin"
(cd bench && go build -o "$BENCH_TMP/bin/relayeval" ./cmd/relayeval)
if [[ -n ${PGMUX_BIN:-} ]]; then
	cp "$PGMUX_BIN" "$BENCH_TMP/bin/pgmux"
else
	build_pgmux "$BENCH_TMP/bin/pgmux" symbols
fi
PGMUX_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

start_postgres "$BENCH_TMP/pg" "$(free_port)" 300
CONF=$BENCH_TMP/conf
mkdir -p "$CONF"
scram_logins "$PASSWORD" "$CONF/userlist.txt"
pgbench_init 10
SERVER="host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres sslmode=disable"

# instr_cmd TARGET PORT DIR: the command line of TARGET under callgrind (dump in DIR/cg.out).
instr_cmd() {
	local t=$1 port=$2 dir=$3
	local vg=(valgrind --tool=callgrind --cache-sim=no --branch-sim=no --callgrind-out-file="$dir/cg.out")
	case $t in
	pgbouncer)
		write_pooler_ini "$dir/p.ini" "$port" "$CONF/userlist.txt"
		INSTR_CMD=("${vg[@]}" /usr/sbin/pgbouncer "$dir/p.ini") ;;
	pgmux)
		write_pooler_ini "$dir/p.ini" "$port" "$CONF/userlist.txt"
		INSTR_CMD=(env GODEBUG=asyncpreemptoff=1 "${vg[@]}" "$BENCH_TMP/bin/pgmux" "$dir/p.ini") ;;
	re-goroutine | re-epoll | re-gnet)
		INSTR_CMD=(env GODEBUG=asyncpreemptoff=1 GOMAXPROCS=2 "${vg[@]}" "$BENCH_TMP/bin/relayeval" -driver "${t#re-}"
			-listen "127.0.0.1:$port" -server "$SERVER" -pool $POOL_SIZE) ;;
	*) die "--instr: no target $t" ;;
	esac
}

ir_of() { awk '/^(summary|totals):/ {print $2; exit}' "$1" 2>/dev/null; }

pgb_n() { # PORT MODE TX_PER_CLIENT
	"$PGBENCH" -n -S -M "$2" -c 50 -j 2 -t "$3" -h 127.0.0.1 -p "$1" -U postgres postgres </dev/null >/dev/null 2>&1
}

# instr_point TARGET MODE: TARGET's instructions per transaction under callgrind, from two
# counts of TX/2 and TX transactions (each with its own 50 logins: the difference over
# TX/2 is the transactions' work alone), as bench/instr.sh counts pgmux's. A Go target is
# counted with callgrind_control's dumps (callgrind fails on the signal that would stop
# it); PgBouncer, which callgrind_control cannot reach while it waits in epoll_wait, is
# counted over two whole lifetimes (the same start, warm-up and shutdown in both).
instr_point() {
	local t=$1 mode=$2 tx=${BENCH_TX:-4000} port dir half full n
	if [[ $t == pgbouncer ]]; then
		for n in $((tx / 2)) "$tx"; do
			port=$(free_port "$PG_PORT")
			dir=$BENCH_TMP/instr-$t-$mode-$n
			mkdir -p "$dir"
			is_root && chown postgres:postgres "$dir"
			instr_cmd "$t" "$port" "$dir"
			start_pooler "pgbouncer-instr-$mode-$n" "$port" "${INSTR_CMD[@]}"
			pgb_n "$port" "$mode" 10 || die "warm-up through $t failed"
			pgb_n "$port" "$mode" $((n / 50)) || die "pgbench through $t failed"
			stop_pooler "$POOLER_PID" "$port"
			if [[ $n == "$tx" ]]; then full=$(ir_of "$dir/cg.out"); else half=$(ir_of "$dir/cg.out"); fi
		done
	else
		port=$(free_port "$PG_PORT")
		dir=$BENCH_TMP/instr-$t-$mode
		mkdir -p "$dir"
		instr_cmd "$t" "$port" "$dir"
		start_pooler "$t-instr-$mode" "$port" "${INSTR_CMD[@]}"
		pgb_n "$port" "$mode" 10 || die "warm-up through $t failed"
		callgrind_control -z "$POOLER_PID" >/dev/null 2>&1
		pgb_n "$port" "$mode" $((tx / 2 / 50)) || die "pgbench through $t failed"
		callgrind_control -d "$POOLER_PID" >/dev/null 2>&1
		pgb_n "$port" "$mode" $((tx / 50)) || die "pgbench through $t failed"
		callgrind_control -d "$POOLER_PID" >/dev/null 2>&1
		half=$(ir_of "$dir/cg.out.1") full=$(ir_of "$dir/cg.out.2")
		stop_pooler "$POOLER_PID" "$port"
	fi
	[[ -n $half && -n $full ]] || die "no callgrind counts for $t"
	rm -f "$BENCH_TMP"/instr-*/cg.out*
	printf '| %s | %s | %s |\n' "$t" "$mode" "$(awk -v a="$half" -v b="$full" -v n="$tx" 'BEGIN {printf "%.0f", (b - a) / (n / 2)}')"
}

if ((INSTR)); then
	command -v valgrind >/dev/null && command -v callgrind_control >/dev/null || die "--instr needs valgrind"
	log "instructions per transaction (callgrind, 50 clients, BENCH_TX=${BENCH_TX:-4000}; load $(cut -d' ' -f1-3 /proc/loadavg))"
	printf '| target | mode | instructions per transaction |\n|---|---|--:|\n'
	for mode in "${MODES[@]}"; do
		for t in "${TARGETS[@]}"; do
			[[ $t == re-epoll1 ]] && continue # under valgrind one thread runs at a time anyway
			instr_point "$t" "$mode"
		done
	done
	exit 0
fi

declare -A PORT PID
taken=("$PG_PORT")
for t in "${TARGETS[@]}"; do
	PORT[$t]=$(free_port "${taken[@]}")
	taken+=("${PORT[$t]}")
done
for t in "${TARGETS[@]}"; do
	p=${PORT[$t]}
	case $t in
	pgbouncer)
		write_pooler_ini "$CONF/pgbouncer.ini" "$p" "$CONF/userlist.txt"
		start_pooler pgbouncer "$p" /usr/sbin/pgbouncer "$CONF/pgbouncer.ini" ;;
	pgmux)
		write_pooler_ini "$CONF/pgmux.ini" "$p" "$CONF/userlist.txt"
		start_pooler pgmux "$p" "$BENCH_TMP/bin/pgmux" --listen "127.0.0.1:$p" "$CONF/pgmux.ini" ;;
	re-goroutine) start_pooler "$t" "$p" "$BENCH_TMP/bin/relayeval" -driver goroutine -listen "127.0.0.1:$p" -server "$SERVER" -pool $POOL_SIZE ;;
	re-epoll) start_pooler "$t" "$p" env GOMAXPROCS=2 "$BENCH_TMP/bin/relayeval" -driver epoll -listen "127.0.0.1:$p" -server "$SERVER" -pool $POOL_SIZE ;;
	re-epoll1) start_pooler "$t" "$p" env GOMAXPROCS=1 "$BENCH_TMP/bin/relayeval" -driver epoll -listen "127.0.0.1:$p" -server "$SERVER" -pool $POOL_SIZE ;;
	re-epollraw) start_pooler "$t" "$p" env GOMAXPROCS=2 "$BENCH_TMP/bin/relayeval" -driver epoll-raw -listen "127.0.0.1:$p" -server "$SERVER" -pool $POOL_SIZE ;;
	re-epollpark) start_pooler "$t" "$p" env GOMAXPROCS=2 "$BENCH_TMP/bin/relayeval" -driver epoll-park -listen "127.0.0.1:$p" -server "$SERVER" -pool $POOL_SIZE ;;
	re-gnet) start_pooler "$t" "$p" "$BENCH_TMP/bin/relayeval" -driver gnet -listen "127.0.0.1:$p" -server "$SERVER" -pool $POOL_SIZE ;;
	*) die "unknown target $t" ;;
	esac
	PID[$t]=$POOLER_PID
done
PGB_VERSION=$(/usr/sbin/pgbouncer --version | awk 'NR==1 {print $2}')
log "PgBouncer $PGB_VERSION, pgmux $PGMUX_COMMIT, targets: ${TARGETS[*]}"

# user_sys PID: utime and stime (fields 14 and 15 of /proc/PID/stat) in clock ticks.
user_sys() {
	local stat rest
	stat=$(<"/proc/$1/stat")
	rest=${stat##*) }
	# shellcheck disable=SC2086
	set -- $rest
	echo "${12} ${13}"
}

# run_point TARGET MODE CLIENTS REP: one pgbench run; appends a row to $RAW.
run_point() {
	local target=$1 mode=$2 clients=$3 rep=$4 dur win0 win1 logdir bpid start t0 t1 u0 s0 u1 s1 tx late status=ok load
	if ((clients >= 200)); then dur=22 win0=8 win1=20; else dur=14 win0=4 win1=13; fi
	logdir=$BENCH_TMP/pglog/$target-$mode-$clients-$rep
	mkdir -p "$logdir"
	load=$(cut -d' ' -f1 /proc/loadavg)
	start=$(now_us)
	timeout $((dur + 120)) "$PGBENCH" -n -S -M "$mode" -c "$clients" -j 2 -T "$dur" -l --log-prefix="$logdir/tx" \
		-h 127.0.0.1 -p "${PORT[$target]}" -U postgres postgres </dev/null >"$logdir/out" 2>&1 &
	bpid=$!
	track_pid "$bpid"
	sleep_until "$start" "$win0"
	t0=$(now_us)
	read -r u0 s0 < <(user_sys "${PID[$target]}")
	sleep_until "$start" "$win1"
	t1=$(now_us)
	read -r u1 s1 < <(user_sys "${PID[$target]}")
	wait "$bpid" || status=fail
	if ! grep -q '^number of transactions actually processed' "$logdir/out" ||
		grep -Eq '^number of failed transactions: [1-9]' "$logdir/out"; then status=fail; fi
	# -l lines: client tx_no latency_us script_no epoch_s epoch_us (the transaction's end)
	read -r tx late < <(cat "$logdir"/tx* | awk -v a="$t0" -v b="$t1" '
		{t = $5 * 1000000 + $6; if (t >= a && t < b) n++; if (t < a) seen[$1] = 1}
		END {k = 0; for (c in seen) k++; print n + 0, k}')
	((tx > 0)) || status=fail
	[[ $status == ok ]] && ((late < clients)) && status=late
	local tps cpu us sy
	tps=$(awk -v n="$tx" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / ((b - a) / 1e6)}')
	cpu=$(us_per_tx $((u1 - u0 + s1 - s0)) "$tx")
	us=$(us_per_tx $((u1 - u0)) "$tx")
	sy=$(us_per_tx $((s1 - s0)) "$tx")
	[[ $status == ok ]] || tail -n 5 "$logdir/out" >&2
	[[ ${BENCH_KEEP_TMP:-0} == 1 ]] || rm -rf "$logdir"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$mode" "$clients" "$rep" "$tps" "$cpu" "$us" "$sy" "$tx" "$load" "$status" >>"$RAW"
	printf '    %-12s %-8s c=%-4s rep %s: tps %7s  cpu %6s us/tx (user %6s sys %6s)  load %s %s\n' \
		"$target" "$mode" "$clients" "$rep" "$tps" "$cpu" "$us" "$sy" "$load" "$status" >&2
}

# syscall_point TARGET: strace -c on every thread of the pooler during a fixed pgbench run
# (after a warm-up that opens every server connection); prints its busiest syscalls per
# transaction.
syscall_point() {
	local target=$1 pid=${PID[$1]} port=${PORT[$1]} args=() spid out=$BENCH_TMP/strace-$1.txt tx=10000 c=50 task
	"$PGBENCH" -n -S -M simple -c $c -j 2 -t 100 -h 127.0.0.1 -p "$port" -U postgres postgres </dev/null >/dev/null 2>&1
	for task in /proc/"$pid"/task/*; do args+=(-p "${task##*/}"); done
	strace -c -o "$out" "${args[@]}" 2>/dev/null &
	spid=$!
	track_pid "$spid"
	sleep 1
	"$PGBENCH" -n -S -M simple -c $c -j 2 -t $((tx / c)) -h 127.0.0.1 -p "$port" -U postgres postgres </dev/null >/dev/null 2>&1 ||
		log "pgbench through $target failed"
	kill -INT "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	printf '| %s |' "$target"
	awk -v n="$tx" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {c[$NF] = $4; t += $4}
		END {
			split("read recvfrom write sendto epoll_wait epoll_pwait futex nanosleep", k, " ")
			for (i = 1; i <= 8; i++) {printf " %.2f |", c[k[i]] / n; o += c[k[i]]}
			printf " %.2f | %.2f |\n", (t - o) / n, t / n
		}' "$out"
}

if ((SYSCALLS)); then
	command -v strace >/dev/null || die "--syscalls needs strace"
	log "syscalls per transaction (strace -c, -M simple, 50 clients, 10000 tx; load $(cut -d' ' -f1-3 /proc/loadavg))"
	printf '| target | read | recvfrom | write | sendto | epoll_wait | epoll_pwait | futex | nanosleep | other | all |\n'
	printf '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n'
	for t in "${TARGETS[@]}"; do syscall_point "$t"; done
	exit 0
fi

printf 'target\tmode\tclients\trep\ttps\tcpu_us\tuser_us\tsys_us\ttx\tload1\tstatus\n' >"$RAW"
log "load before: $(cat /proc/loadavg)"
for ((rep = 1; rep <= REPS; rep++)); do
	for mode in "${MODES[@]}"; do
		for clients in "${CLIENTS[@]}"; do
			log "rep $rep: -M $mode, $clients clients"
			# rotate the order each repetition so no target always runs first
			n=${#TARGETS[@]}
			for ((i = 0; i < n; i++)); do
				run_point "${TARGETS[$(((i + rep - 1) % n))]}" "$mode" "$clients" "$rep"
			done
		done
	done
done
log "load after: $(cat /proc/loadavg)"

# Medians per point and target; ratios of medians to PgBouncer's.
{
	printf '\nrelayeval.sh %s, pgmux %s, PgBouncer %s, %s reps, pool %s\n\n' "$(date -u +%FT%TZ)" "$PGMUX_COMMIT" "$PGB_VERSION" "$REPS" "$POOL_SIZE"
	printf '| point | target | tps median (min-max) | CPU µs/tx median (min-max) | user µs/tx | sys µs/tx | CPU vs PgBouncer | tps vs PgBouncer | runs not ok |\n'
	printf '|---|---|--:|--:|--:|--:|--:|--:|--:|\n'
	awk -F'\t' -v order="${TARGETS[*]}" '
		function med(s,   a, n, i, j, t) {
			n = split(s, a, " ")
			for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) {t = a[i]; a[i] = a[j]; a[j] = t}
			lo = a[1]; hi = a[n]
			return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		}
		NR == 1 {next}
		{
			k = $2 " c=" $3 SUBSEP $1
			if (!(($2 " c=" $3) in seenp)) {seenp[$2 " c=" $3] = 1; points[++np] = $2 " c=" $3}
			if ($11 == "fail") {bad[k]++; next}
			if ($11 != "ok") bad[k]++
			tps[k] = tps[k] " " $5; cpu[k] = cpu[k] " " $6; usr[k] = usr[k] " " $7; sys[k] = sys[k] " " $8
		}
		END {
			nt = split(order, tg, " ")
			for (p = 1; p <= np; p++) {
				b = points[p] SUBSEP "pgbouncer"
				bt = (b in tps) ? med(tps[b]) : 0; bc = (b in cpu) ? med(cpu[b]) : 0
				for (i = 1; i <= nt; i++) {
					k = points[p] SUBSEP tg[i]
					if (!(k in tps)) continue
					mt = med(tps[k]); tlo = lo; thi = hi
					mc = med(cpu[k]); clo = lo; chi = hi
					mu = med(usr[k]); ms = med(sys[k])
					printf "| %s | %s | %.0f (%.0f-%.0f) | %.2f (%.2f-%.2f) | %.2f | %.2f | %s | %s | %d |\n", points[p], tg[i], mt, tlo, thi, mc, clo, chi, mu, ms,
						bc ? sprintf("%.2fx", mc / bc) : "n/a", bt ? sprintf("%.2fx", mt / bt) : "n/a", bad[k] + 0
				}
			}
		}' "$RAW"
} | tee "$OUT/relayeval.md"
