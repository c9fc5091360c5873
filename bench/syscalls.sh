#!/usr/bin/env bash
# Where a pooler's CPU per transaction goes, side by side with PgBouncer: user and system
# time per transaction (from /proc) and, with perf, system calls, context switches and
# futex calls per transaction (perf stat's syscall tracepoints). pgbench -S, pool 20,
# logins against the server's SCRAM verifier (as bench/run.sh). Each target runs
# pgbench for a fixed time; the figures cover 4 s after every client has logged in
# (2 s plus 1 s per 100 clients from the start), so logins are outside them.
#
#   bench/syscalls.sh                          # ./cmd/pgmux, -M simple, 50 clients
#   BENCH_MODES="simple extended" BENCH_CLIENTS="50 500" bench/syscalls.sh
#   BENCH_MODES=churn BENCH_CLIENTS=4 bench/syscalls.sh  # a login per transaction
#                                              # (pgbench -C): figures per login
#   bench/syscalls.sh NAME=BIN[:VAR=V,...] ... # these pgmux builds (with environment
#                                              # variables, e.g. b=/tmp/pgmux:GOMAXPROCS=1)
#
# The tracepoints add their own cost, so the time per transaction under perf is higher
# than bench/run.sh's; compare the targets of one run. Without perf (linux-perf) only the
# time split is printed.
set -euo pipefail
export HOME="${HOME:-/root}"
export PATH="/usr/local/go/bin:${PATH}:/usr/local/sbin:/usr/sbin:/sbin"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"

read -ra QMODES <<<"${BENCH_MODES:-simple}"
read -ra CLIENTS <<<"${BENCH_CLIENTS:-50}"
ensure_tools postgresql-15:/usr/lib/postgresql/15/bin/pgbench pgbouncer:/usr/sbin/pgbouncer
PGBENCH=$(pg_bindir)/pgbench
raise_nofile
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
bench_tmpdir

SPECS=("$@")
if ((${#SPECS[@]} == 0)); then
	build_pgmux "$BENCH_TMP/pgmux-head" symbols
	SPECS=("pgmux=$BENCH_TMP/pgmux-head")
fi
EVENTS=(context-switches syscalls:sys_enter_futex syscalls:sys_enter_epoll_wait syscalls:sys_enter_epoll_pwait
	syscalls:sys_enter_read syscalls:sys_enter_write syscalls:sys_enter_recvfrom syscalls:sys_enter_sendto
	syscalls:sys_enter_nanosleep)
PERF=0
if command -v perf >/dev/null && perf stat -x, -e syscalls:sys_enter_read -- true >/dev/null 2>&1; then
	PERF=1
else
	log "perf with syscall tracepoints not available: time split only"
fi

start_postgres "$BENCH_TMP/pg" "$(free_port)" 300
CONF=$BENCH_TMP/conf
mkdir -p "$CONF"
scram_logins bench-secret "$CONF/userlist.txt"
pgbench_init 10

declare -A PORT PID
NAMES=(pgbouncer)
PORT[pgbouncer]=$(free_port "$PG_PORT")
write_pooler_ini "$CONF/pgbouncer.ini" "${PORT[pgbouncer]}" "$CONF/userlist.txt" "stats_users = postgres"
start_pooler pgbouncer "${PORT[pgbouncer]}" /usr/sbin/pgbouncer "$CONF/pgbouncer.ini"
PID[pgbouncer]=$POOLER_PID
for spec in "${SPECS[@]}"; do
	[[ $spec == *=* ]] || die "target $spec: expected NAME=BIN[:VAR=V,...]"
	name=${spec%%=*} rest=${spec#*=}
	bin=${rest%%:*} envs=()
	[[ $rest == *:* ]] && IFS=, read -ra envs <<<"${rest#*:}"
	[[ -x $bin ]] || die "$bin is not an executable"
	PORT[$name]=$(free_port "$PG_PORT" "${PORT[@]}")
	start_pooler "$name" "${PORT[$name]}" env "${envs[@]+"${envs[@]}"}" "$bin" --listen "127.0.0.1:${PORT[$name]}" "$CONF/pgbouncer.ini"
	PID[$name]=$POOLER_PID
	NAMES+=("$name")
done

# xacts PORT: the pooler's total_xact_count for database postgres (SHOW STATS).
xacts() {
	"$(pg_bindir)/psql" -X -q -A -F'|' -h 127.0.0.1 -p "$1" -U postgres -d pgbouncer -c 'SHOW STATS' </dev/null |
		awk -F'|' 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == "total_xact_count") c = i; next}
			$1 == "postgres" {print $c + 0; found = 1} END {if (!found) print 0}'
}

# user_sys PID: utime and stime (fields 14 and 15 of /proc/PID/stat) in clock ticks.
user_sys() {
	local stat rest
	stat=$(<"/proc/$1/stat")
	rest=${stat##*) }
	# shellcheck disable=SC2086
	set -- $rest
	echo "${12} ${13}"
}

log "load: $(uptime)"
for qmode in "${QMODES[@]}"; do
	for clients in "${CLIENTS[@]}"; do
		# churn: a login per transaction (pgbench -C), so the figures are per login.
		margs=(-M "$qmode") unit=transaction
		[[ $qmode == churn ]] && margs=(-M simple -C) unit=login
		printf '\n-S %s, %s clients (per %s)\n' "${margs[*]}" "$clients" "$unit"
		printf '%-12s %8s %8s %8s' target tps user_us sys_us
		((PERF)) && printf ' %8s' ctxsw futex epoll_w epoll_pw read write recvfrom sendto nanoslp
		printf '\n'
		warm=$((2 + clients / 100))
		for t in "${NAMES[@]}"; do
			"$PGBENCH" -n -S "${margs[@]}" -c "$clients" -j 2 -T $((warm + 6)) -h 127.0.0.1 -p "${PORT[$t]}" -U postgres postgres \
				>"$BENCH_TMP/pgbench.out" 2>&1 </dev/null &
			pb=$!
			track_pid "$pb"
			sleep "$warm"
			a0=$(now_us)
			x0=$(xacts "${PORT[$t]}")
			a1=$(now_us)
			read -r u0 s0 < <(user_sys "${PID[$t]}")
			t0=$(now_us)
			if ((PERF)); then
				perf stat -x, -e "$(
					IFS=,
					echo "${EVENTS[*]}"
				)" -p "${PID[$t]}" -- sleep 4 2>"$BENCH_TMP/perf.out" >/dev/null || true
			else
				sleep 4
			fi
			read -r u1 s1 < <(user_sys "${PID[$t]}")
			t1=$(now_us)
			b0=$(now_us)
			x1=$(xacts "${PORT[$t]}")
			b1=$(now_us)
			wait "$pb" || { tail -n 3 "$BENCH_TMP/pgbench.out" >&2; die "pgbench through $t failed"; }
			# The pooler's transaction rate between its two counts (each taken mid-way through
			# its psql call), over the measured window.
			tps=$(awk -v x=$((x1 - x0)) -v a=$(((a0 + a1) / 2)) -v b=$(((b0 + b1) / 2)) 'BEGIN {printf "%.0f", x / ((b - a) / 1e6)}')
			tx=$(awk -v r="$tps" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", r * (b - a) / 1e6}')
			((tx > 0)) || die "no transactions counted by $t over the window"
			printf '%-12s %8.0f %8s %8s' "$t" "$tps" "$(us_per_tx $((u1 - u0)) "$tx")" "$(us_per_tx $((s1 - s0)) "$tx")"
			if ((PERF)); then
				for e in "${EVENTS[@]}"; do
					awk -F, -v e="$e" -v n="$tx" '$3 == e {v = $1} END {printf " %8.3f", (v == "" || v == "<not counted>") ? 0 : v / n}' "$BENCH_TMP/perf.out"
				done
			fi
			printf '\n'
		done
	done
done
log "load: $(uptime)"
