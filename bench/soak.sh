#!/usr/bin/env bash
# Soak test: SOAK_SECONDS (default 600) of mixed load through pgmux (simple, extended,
# prepared, sticky clients, LISTEN/NOTIFY) with random client kills, two PostgreSQL
# restarts (pg_ctl restart -m fast) and a RELOAD (SIGHUP). See bench/cmd/soak.
#
# The soak's clients reach pgmux over TCP on 127.0.0.1 (the listener that logs clients in
# on its client loops); the console, PostgreSQL and pgmux's servers use unix sockets in a
# temporary directory. SOAK_TCP=0: the clients use the unix socket too.
# Usage: SOAK_SECONDS=180 SOAK_CLIENTS=40 bench/soak.sh
#        SOAK_KINDS=listen,simple bench/soak.sh   # only these client kinds (round-robin)
#        BENCH_KEEP_TMP=1 bench/soak.sh           # keep the temp dir (pgmux.log, postgres.log)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_CLIENTS=${SOAK_CLIENTS:-40}
PG_SOCK_PORT=5432  # socket file names only (.s.PGSQL.N): nothing listens on TCP
MUX_SOCK_PORT=6432
SOAK_TCP=${SOAK_TCP:-1}
listen_addr=
((SOAK_TCP)) && MUX_SOCK_PORT=$(free_port) listen_addr=127.0.0.1

trap bench_cleanup EXIT
bench_tmpdir
dir=$BENCH_TMP
bin=$(pg_bindir) || die "PostgreSQL server binaries not found"
is_root && chown postgres:postgres "$dir"

log "building pgmux and the soak driver"
build_pgmux "$dir/pgmux" && (cd "$BENCH_ROOT/bench" && go build -o "$dir/soak" ./cmd/soak)

log "starting PostgreSQL in $dir"
as_pg_user "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync --no-instructions \
	>"$dir/initdb.log" 2>&1 </dev/null || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
pgopts="-k $dir -p $PG_SOCK_PORT -c listen_addresses='' -c max_connections=300 -c fsync=off -c synchronous_commit=off"
pgctl() { as_pg_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -o "$pgopts" -w -t 60 -s "$@"; }
pgctl start
stop_pg() { as_pg_user "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 -s stop >/dev/null 2>&1 || true; }
trap 'stop_pg; bench_cleanup' EXIT
"$bin/psql" -X -q -h "$dir" -p $PG_SOCK_PORT -U postgres -d postgres \
	-c "CREATE ROLE app LOGIN PASSWORD 'apppass'" -c "CREATE DATABASE soak OWNER app" >/dev/null

cat >"$dir/pgmux.ini" <<INI
[databases]
soak = host=$dir port=$PG_SOCK_PORT dbname=soak
[pgbouncer]
listen_addr = $listen_addr
unix_socket_dir = $dir
listen_port = $MUX_SOCK_PORT
auth_type = md5
auth_file = userlist.txt
admin_users = admin
pool_mode = transaction
default_pool_size = 16
max_client_conn = 1000
server_login_retry = 1
query_wait_timeout = 30
server_idle_timeout = 60
; a fifth of the clients are sticky: give them room so only the faults cause errors
direct_pool_size = 12
INI
printf '"app" "apppass"\n"admin" "adminpass"\n' >"$dir/userlist.txt"
"$dir/pgmux" "$dir/pgmux.ini" >"$dir/pgmux.log" 2>&1 &
mux_pid=$!
track_pid "$mux_pid"
for ((i = 0; i < 100; i++)); do [[ -S $dir/.s.PGSQL.$MUX_SOCK_PORT ]] && break; sleep 0.1; done
[[ -S $dir/.s.PGSQL.$MUX_SOCK_PORT ]] || { cat "$dir/pgmux.log" >&2; die "pgmux did not start"; }

mux_host=$dir
((SOAK_TCP)) && mux_host=127.0.0.1
log "soaking for ${SOAK_SECONDS}s with $SOAK_CLIENTS clients (clients on $mux_host)"
"$dir/soak" -seconds "$SOAK_SECONDS" -clients "$SOAK_CLIENTS" -pgmux-pid "$mux_pid" \
	-mux "host=$mux_host port=$MUX_SOCK_PORT user=app password=apppass dbname=soak" \
	-admin "host=$dir port=$MUX_SOCK_PORT user=admin password=adminpass dbname=pgbouncer" \
	-direct "host=$dir port=$PG_SOCK_PORT user=postgres dbname=soak" \
	-restart "setpriv_wrap() { if [ \$(id -u) -eq 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups -- \"\$@\"; else \"\$@\"; fi; }; setpriv_wrap $bin/pg_ctl -D $dir/data -l $dir/postgres.log -o \"$pgopts\" -m fast -w -t 60 -s restart"
kill -0 "$mux_pid" 2>/dev/null || die "pgmux died during the soak"
warns=$(grep -c '"level":"\(error\|dpanic\|panic\|fatal\)"' "$dir/pgmux.log" || true)
echo "pgmux log: $(wc -l <"$dir/pgmux.log") lines, $warns at error level or worse"
