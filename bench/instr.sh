#!/usr/bin/env bash
# pgmux's own instructions per transaction, counted by valgrind (callgrind): a figure that
# does not move with the machine's load, for A/B of builds on a shared machine where CPU
# time per transaction is noisy. pgbench -S (simple or extended), 50 clients, pool 20,
# logins against the server's SCRAM verifier. Logins and idle time are kept out: after a
# warm-up, two pgbench runs of TX/2 and TX transactions are counted apart (callgrind's
# dumps) and the figure is their difference over TX/2. It includes the Go runtime
# (scheduler, netpoller), not the kernel.
#
#   bench/instr.sh                        # ./cmd/pgmux, -M simple and extended
#   bench/instr.sh /tmp/pgmux-a /tmp/pgmux-b
#   BENCH_MODES=simple BENCH_TX=4000 bench/instr.sh
#   BENCH_MODES="simple extended unnamed" bench/instr.sh
#   BENCH_KEEP_TMP=1 bench/instr.sh      # keeps the callgrind dumps for callgrind_annotate
#   BENCH_REPS=3 bench/instr.sh A B      # three rounds, the builds alternating in each
#   BENCH_PGBOUNCER=1 bench/instr.sh     # PgBouncer's figure too, in each round
#   BENCH_INSTR_CLIENTS=500 bench/instr.sh   # 500 clients instead of 50 (TX a multiple of 1000)
#   BENCH_CACHE=524288 bench/instr.sh    # also cache misses per transaction (see below)
#
# Modes: simple and extended (pgbench -M), and unnamed: -M extended with
# cache_unnamed_statements = 1 (each Parse of the unnamed statement served from the
# server's statement cache, issue 13).
#
# PgBouncer (BENCH_PGBOUNCER=1, Debian's package) runs as the postgres user, where
# callgrind_control cannot reach it (its vgdb hangs), so its figure comes from two processes
# instead of two dumps of one: each serves a warm-up and one pgbench run (TX/2, or TX
# transactions), and the difference of their totals over TX/2 is again the transactions'
# work alone (both have the same logins).
#
# Under valgrind the process runs one thread at a time and ~50x slower, so a scheduler
# that spins or wakes threads is counted as it runs there, not as on the real machine;
# the Go runtime's asynchronous preemption is turned off (GODEBUG=asyncpreemptoff=1:
# callgrind cannot follow its signals). Two runs of one build agree within ~2% on a quiet
# machine; at load averages of 20-50 (other builds and tests on the 2-core machine) the
# scheduler's idle work (spinning, sysmon's wake-ups) moves the figure by up to ~10%:
# run the builds alternately several times (BENCH_REPS) and compare medians.
#
# BENCH_CACHE=BYTES turns on callgrind's cache simulation: 32 KB L1 instruction and data
# caches and a last level of BYTES (16-way, 64-byte lines), and adds the misses per
# transaction of each (I1, D1, LL: reads and writes). This machine's virtual CPUs have no
# hardware counters (perf stat: <not supported>), so the simulation is what shows cache
# misses: the memory a transaction touches that the previous ones did not keep in cache.
# A last level of 512 KB stands for the share of L2 the pooler keeps beside PostgreSQL
# and pgbench on a busy core; with 500 clients (BENCH_INSTR_CLIENTS) it shows the
# per-client state each transaction brings back from memory, which 50 clients keep
# cached. The simulation runs ~3x slower than counting alone.
set -euo pipefail
export HOME="${HOME:-/root}"
export PATH="/usr/local/go/bin:${PATH}:/usr/local/sbin:/usr/sbin:/sbin"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"

read -ra QMODES <<<"${BENCH_MODES:-simple extended}"
TX=${BENCH_TX:-4000}
REPS=${BENCH_REPS:-1}
CLIENTS=${BENCH_INSTR_CLIENTS:-50}
SIM=(--cache-sim=no)
if [[ -n ${BENCH_CACHE:-} ]]; then
	SIM=(--cache-sim=yes --I1=32768,8,64 --D1=32768,8,64 "--LL=$BENCH_CACHE,16,64")
fi
callgrind_setup 300 10 "$@"

# per_tx HALF FULL: instructions per transaction from the counts of the two runs.
per_tx() { awk -v a="$1" -v b="$2" -v n="$TX" 'BEGIN {printf "%.0f", (b - a) / (n / 2)}'; }

# misses_per_tx HALF_DUMP FULL_DUMP: " | I1 | D1 | LL" misses per transaction (BENCH_CACHE),
# from the dumps' event totals; nothing without the simulation.
misses_per_tx() {
	[[ -n ${BENCH_CACHE:-} ]] || return 0
	awk -v n="$TX" '
		FNR == 1 { f++; seen = 0 }
		/^events:/ { for (i = 2; i <= NF; i++) col[$i] = i }
		/^(summary|totals):/ && !seen++ {
			for (e in col) v[f, e] = $col[e]
		}
		END {
			split("I1mr D1mr D1mw DLmr DLmw", names, " ")
			for (k in names) d[names[k]] = (v[2, names[k]] - v[1, names[k]]) / (n / 2)
			printf " | %.0f | %.0f | %.1f", d["I1mr"], d["D1mr"] + d["D1mw"], d["DLmr"] + d["DLmw"]
		}' "$1" "$2"
}

pgb() { # PORT MODE TX_PER_CLIENT
	local m=$2
	[[ $m == unnamed ]] && m=extended
	"$PGBENCH" -n -S -M "$m" -c "$CLIENTS" -j 2 -t "$3" -h 127.0.0.1 -p "$1" -U postgres postgres </dev/null 2>&1
}

# pgbouncer_per_tx MODE: PgBouncer's row (see above).
pgbouncer_per_tx() {
	local qmode=$1 t port dir out tot=() dumps=() misses
	for t in $((TX / 2)) "$TX"; do
		i=$((i + 1))
		port=$(free_port "$PG_PORT")
		write_pooler_ini "$CONF/pgbouncer.ini" "$port" "$CONF/userlist.txt"
		dir=$BENCH_TMP/run$i
		mkdir -p "$dir" && chmod 0777 "$dir"
		start_pooler "pgbouncer$i" "$port" valgrind --tool=callgrind "${SIM[@]}" --branch-sim=no \
			--callgrind-out-file="$dir/cg.out" "$PGBOUNCER_BIN" "$CONF/pgbouncer.ini"
		pgb "$port" "$qmode" 10 >/dev/null || die "warm-up through PgBouncer failed"
		out=$(pgb "$port" "$qmode" $((t / CLIENTS))) || { echo "$out" >&2; die "pgbench through PgBouncer failed"; }
		stop_pooler "$POOLER_PID" "$port"
		tot+=("$(dump_ir "$dir/cg.out")")
		[[ -n ${tot[-1]} ]] || die "no callgrind dump for PgBouncer"
		dumps+=("$dir/cg.out")
	done
	misses=$(misses_per_tx "${dumps[@]}")
	[[ ${BENCH_KEEP_TMP:-0} == 1 ]] || rm -f "${dumps[@]}"
	printf '| PgBouncer %s | %s | %s | %s%s |\n' "$PGB_VERSION" "$qmode" "$(per_tx "${tot[0]}" "${tot[1]}")" \
		"$(awk '/^tps = / {printf "%.0f", $3}' <<<"$out")" "$misses"
}
if [[ ${BENCH_PGBOUNCER:-0} == 1 ]]; then
	ensure_tools pgbouncer:/usr/sbin/pgbouncer
	PGBOUNCER_BIN=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
	PGB_VERSION=$("$PGBOUNCER_BIN" --version | awk 'NR == 1 {print $2}')
fi

if [[ -n ${BENCH_CACHE:-} ]]; then
	printf '| build | mode | instructions per transaction | tps under valgrind | I1 misses | D1 misses | LL misses (%s bytes) |\n|---|---|--:|--:|--:|--:|--:|\n' "$BENCH_CACHE"
else
	printf '| build | mode | instructions per transaction | tps under valgrind |\n|---|---|--:|--:|\n'
fi
i=0
for qmode in "${QMODES[@]}"; do
	for ((rep = 0; rep < REPS; rep++)); do
		for bin in "${BINS[@]}"; do
			i=$((i + 1))
			port=$(free_port "$PG_PORT")
			extra=()
			[[ $qmode == unnamed ]] && extra=("cache_unnamed_statements = 1")
			write_pooler_ini "$CONF/instr.ini" "$port" "$CONF/userlist.txt" "${extra[@]}"
			dir=$BENCH_TMP/run$i
			mkdir -p "$dir"
			start_pooler "run$i" "$port" env GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind "${SIM[@]}" \
				--branch-sim=no --callgrind-out-file="$dir/cg.out" "$bin" "$CONF/instr.ini"
			pid=$POOLER_PID
			pgb "$port" "$qmode" 10 >/dev/null || die "warm-up through $bin failed"
			# Two runs, TX/2 and TX transactions, each with its own 50 logins and idle tail: the
			# difference of their counts is TX/2 transactions' work alone.
			callgrind_control -z "$pid" >/dev/null
			pgb "$port" "$qmode" $((TX / 2 / CLIENTS)) >/dev/null || die "pgbench through $bin failed"
			callgrind_control -d "$pid" >/dev/null
			out=$(pgb "$port" "$qmode" $((TX / CLIENTS))) || { echo "$out" >&2; die "pgbench through $bin failed"; }
			callgrind_control -d "$pid" >/dev/null
			half=$(dump_ir "$dir/cg.out.1") full=$(dump_ir "$dir/cg.out.2")
			[[ -n $half && -n $full ]] || die "no callgrind dumps for $bin"
			misses=$(misses_per_tx "$dir/cg.out.1" "$dir/cg.out.2")
			stop_pooler "$pid" "$port"
			if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then
				log "$bin $qmode: callgrind dumps $dir/cg.out.1 ($((TX / 2)) tx) and $dir/cg.out.2 ($TX tx)"
			else
				rm -f "$dir"/cg.out*
			fi
			printf '| %s | %s | %s | %s%s |\n' "$bin" "$qmode" "$(per_tx "$half" "$full")" \
				"$(awk '/^tps = / {printf "%.0f", $3}' <<<"$out")" "$misses"
		done
		if [[ ${BENCH_PGBOUNCER:-0} == 1 && $qmode != unnamed ]]; then
			pgbouncer_per_tx "$qmode"
		fi
	done
done
