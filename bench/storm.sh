#!/usr/bin/env bash
# A login storm side by side with PgBouncer: N clients log in (64 at a time, SCRAM against
# the server's verifier in every pooler's auth file), then all leave at once (Terminate
# and close), as an application's pool does when it starts and when it is deployed again.
# The clients derive their SCRAM keys once (idleclients -reuse-keys), so the client side
# costs little and the storm measures each pooler's own work: its CPU (utime+stime of
# /proc/PID/stat) per client for the logins and for the departures, and the logins' wall
# time. Targets alternate, REPS rounds (default 5); medians are printed with the ratio.
# (pgbench -C, bench/run.sh's churn, paces its logins by its own key derivation and adds a
# transaction to each; this is the other shape of login load, the 5,000-client points'.)
#
#   bench/storm.sh                 # ./cmd/pgmux, 5000 clients, 5 rounds
#   BENCH_STORM=2000 BENCH_REPS=9 bench/storm.sh
#   PGMUX_BIN=/tmp/pgmux-a PGMUX_BIN_B=/tmp/pgmux-b bench/storm.sh   # two builds as well
set -euo pipefail
export HOME="${HOME:-/root}"
export PATH="/usr/local/go/bin:${PATH}:/usr/local/sbin:/usr/sbin:/sbin"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"

N=${BENCH_STORM:-5000}
REPS=${BENCH_REPS:-5}
PASSWORD=bench-secret
ensure_tools postgresql-15:/usr/lib/postgresql/15/bin/pgbench pgbouncer:/usr/sbin/pgbouncer
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
raise_nofile
(($(ulimit -n) > N + 200)) || die "ulimit -n is $(ulimit -n): too low for $N clients"

trap bench_cleanup EXIT
trap 'exit 130' INT TERM
bench_tmpdir
mkdir -p "$BENCH_TMP/bin"
if [[ -n ${PGMUX_BIN:-} ]]; then cp "$PGMUX_BIN" "$BENCH_TMP/bin/pgmux"; else build_pgmux "$BENCH_TMP/bin/pgmux"; fi
TARGETS=(pgmux pgbouncer)
if [[ -n ${PGMUX_BIN_B:-} ]]; then
	cp "$PGMUX_BIN_B" "$BENCH_TMP/bin/pgmux-b"
	TARGETS=(pgmux pgmux-b pgbouncer)
fi
(cd bench && go build -o "$BENCH_TMP/bin/idleclients" ./cmd/idleclients)

pg_port=$(free_port)
start_postgres "$BENCH_TMP/pg" "$pg_port" 100
CONF=$BENCH_TMP/conf
mkdir -p "$CONF"
scram_logins "$PASSWORD" "$CONF/userlist.txt"
declare -A PORT PID
for t in "${TARGETS[@]}"; do
	PORT[$t]=$(free_port "$pg_port" "${PORT[@]}")
	write_pooler_ini "$CONF/$t.ini" "${PORT[$t]}" "$CONF/userlist.txt"
	case $t in
	pgbouncer) start_pooler "$t" "${PORT[$t]}" "$PGBOUNCER" "$CONF/$t.ini" ;;
	*) start_pooler "$t" "${PORT[$t]}" "$BENCH_TMP/bin/$t" "$CONF/$t.ini" ;;
	esac
	PID[$t]=$POOLER_PID
	# one login first, so that the pool has its server and the storm is the clients'
	PGPASSWORD=$PASSWORD "$(pg_bindir)/psql" -X -q -h 127.0.0.1 -p "${PORT[$t]}" -U postgres -d postgres \
		-c 'SELECT 1' </dev/null >/dev/null
done
log "PostgreSQL on $pg_port; ${TARGETS[*]} on ${PORT[*]}; $N clients, $REPS rounds"

# storm TARGET: one round; appends "target login_us leave_us login_s" to $BENCH_TMP/storm.tsv.
storm() {
	local t=$1 pid=${PID[$1]} out=$BENCH_TMP/storm.out ip t0 t1 t2 s0 s1
	t0=$(proc_cpu_ticks "$pid")
	s0=$(now_us)
	"$BENCH_TMP/bin/idleclients" -addr "127.0.0.1:${PORT[$t]}" -n "$N" -user postgres -password "$PASSWORD" \
		-db postgres -hold 120s -reuse-keys -concurrency 64 >"$out" 2>&1 </dev/null &
	ip=$!
	track_pid "$ip"
	local ready=true
	idle_clients_ready "$out" "$ip" 6000 0.02 || ready=false
	s1=$(now_us)
	t1=$(proc_cpu_ticks "$pid")
	$ready || { cat "$out" >&2; die "$t: the clients did not all log in"; }
	kill -TERM "$ip" # each client sends Terminate and closes
	wait "$ip" 2>/dev/null || true
	sleep 2 # the departures are served
	t2=$(proc_cpu_ticks "$pid")
	awk -v t="$t" -v a=$((t1 - t0)) -v b=$((t2 - t1)) -v n="$N" -v hz="$CLK_TCK" -v w=$((s1 - s0)) \
		'BEGIN {printf "%s\t%.1f\t%.1f\t%.2f\n", t, a / hz * 1e6 / n, b / hz * 1e6 / n, w / 1e6}' | tee -a "$BENCH_TMP/storm.tsv" >&2
}

for ((r = 1; r <= REPS; r++)); do
	for t in "${TARGETS[@]}"; do storm "$t"; done
done

printf '\n| target | login CPU µs/client | departure CPU µs/client | logins wall s | / PgBouncer (login, departure) |\n|---|--:|--:|--:|--:|\n'
med() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
bl=$(awk -F'\t' '$1 == "pgbouncer" {print $2}' "$BENCH_TMP/storm.tsv" | med)
bd=$(awk -F'\t' '$1 == "pgbouncer" {print $3}' "$BENCH_TMP/storm.tsv" | med)
for t in "${TARGETS[@]}"; do
	l=$(awk -F'\t' -v t="$t" '$1 == t {print $2}' "$BENCH_TMP/storm.tsv" | med)
	d=$(awk -F'\t' -v t="$t" '$1 == t {print $3}' "$BENCH_TMP/storm.tsv" | med)
	w=$(awk -F'\t' -v t="$t" '$1 == t {print $4}' "$BENCH_TMP/storm.tsv" | med)
	awk -v t="$t" -v l="$l" -v d="$d" -v w="$w" -v bl="$bl" -v bd="$bd" \
		'BEGIN {printf "| %s | %.1f | %.1f | %.2f | %.2fx, %.2fx |\n", t, l, d, w, l / bl, d / bd}'
done
