#!/usr/bin/env bash
# pgmux demo: a throwaway PostgreSQL (or the one in DATABASE_URL), pgmux in transaction mode
# in front of it (pool 20), and pgbench through pgmux. Prints pgbench's results, pgmux's CPU
# time per transaction and its RSS. Stops what it started and removes its temp dir.
#
#   bench/demo.sh                      # throwaway server in a temp dir
#   DATABASE_URL=postgres://u:p@host:5432/db bench/demo.sh
#                                      # your server: pgbench -i REPLACES its pgbench_* tables
#
# Env: PGMUX_BIN (use this binary instead of building ./cmd/pgmux), DEMO_SECONDS (15) per pgbench run, DEMO_SCALE (10), DEMO_CLIENTS (50).
set -euo pipefail
export HOME="${HOME:-/root}"
export PATH="/usr/local/go/bin:${PATH}:/usr/local/sbin:/usr/sbin:/sbin"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"

SECONDS_PER_RUN=${DEMO_SECONDS:-15}
SCALE=${DEMO_SCALE:-10}
CLIENTS=${DEMO_CLIENTS:-50}

command -v go >/dev/null || die "go not found on PATH (install Go >= the version in go.mod)"
if [[ -z ${DATABASE_URL:-} ]]; then
	ensure_tools postgresql-15:/usr/lib/postgresql/15/bin/initdb
else
	command -v pgbench >/dev/null || ensure_tools postgresql-client-15:/usr/lib/postgresql/15/bin/pgbench
fi
PGBENCH=$(command -v pgbench || echo "$(pg_bindir)/pgbench")

trap bench_cleanup EXIT
trap 'exit 130' INT TERM
bench_tmpdir

log "building pgmux"
if [[ -n ${PGMUX_BIN:-} ]]; then
	cp "$PGMUX_BIN" "$BENCH_TMP/pgmux"
else
	build_pgmux "$BENCH_TMP/pgmux"
fi

if [[ -z ${DATABASE_URL:-} ]]; then
	PG_PORT=$(free_port)
	log "starting a throwaway PostgreSQL on 127.0.0.1:$PG_PORT (data in $BENCH_TMP/pg)"
	start_postgres "$BENCH_TMP/pg" "$PG_PORT" 200
	UPSTREAM="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
else
	UPSTREAM=$DATABASE_URL
	log "using the server in DATABASE_URL"
fi

MUX_PORT=$(free_port "${PG_PORT:-}")
# The client-side URL: the upstream's user, password and database, pgmux's address.
re='^(postgres(ql)?://)([^@/]*@)?[^/?]*(/[^?]*)?'
[[ $UPSTREAM =~ $re ]] || die "DATABASE_URL is not a postgres:// URL"
CLIENT_URL="${BASH_REMATCH[1]}${BASH_REMATCH[3]}127.0.0.1:$MUX_PORT${BASH_REMATCH[4]:-}?sslmode=disable"

log "starting pgmux on 127.0.0.1:$MUX_PORT (transaction mode, pool 20)"
"$BENCH_TMP/pgmux" --upstream "$UPSTREAM" --listen "127.0.0.1:$MUX_PORT" \
	--pool-mode transaction --pool-size 20 --max-client-conn 1000 --log-level warn \
	>"$BENCH_TMP/pgmux.log" 2>&1 </dev/null &
MUX_PID=$!
track_pid "$MUX_PID"
wait_port "$MUX_PORT" 20 || { cat "$BENCH_TMP/pgmux.log" >&2; die "pgmux did not start"; }

log "pgbench -i -s $SCALE (through pgmux)"
"$PGBENCH" -i -s "$SCALE" -q "$CLIENT_URL" </dev/null 2>&1 | tail -n 2

# run_pgbench LABEL ARGS...: runs pgbench through pgmux and prints its summary plus pgmux's
# CPU per transaction and RSS.
run_pgbench() {
	local label=$1 out t0 t1 tx
	shift
	log "$label: pgbench $*"
	t0=$(proc_cpu_ticks "$MUX_PID")
	out=$("$PGBENCH" "$@" "$CLIENT_URL" </dev/null 2>&1) || { echo "$out" >&2; die "pgbench failed"; }
	t1=$(proc_cpu_ticks "$MUX_PID")
	echo "$out" | grep -E '^(transaction type|scaling factor|query mode|number of clients|number of threads|duration|number of transactions actually|number of failed|latency|initial connection|tps)' | sed 's/^/    /'
	tx=$(echo "$out" | awk -F': ' '/^number of transactions actually processed/ {split($2, a, "/"); print a[1]+0}')
	if ((tx > 0)); then
		awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$tx" -v rss="$(proc_rss_kb "$MUX_PID")" 'BEGIN {
			printf "    pgmux CPU: %.1f us/transaction (%.2f s over %d transactions); pgmux RSS: %.1f MiB\n",
				t / hz * 1e6 / n, t / hz, n, rss / 1024 }'
	fi
}

run_pgbench "select-only" -c "$CLIENTS" -j 2 -T "$SECONDS_PER_RUN" -S -n
run_pgbench "tpcb-like" -c "$CLIENTS" -j 2 -T "$SECONDS_PER_RUN" -n

log "done; stopping pgmux${DATABASE_URL:+ } and cleaning up"
