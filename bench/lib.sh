# Shared helpers for bench/demo.sh, bench/run.sh and bench/unnamed.sh. Source it; do not run it.
#
# Everything here listens on 127.0.0.1 only, every wait loop is bounded, and every process
# started is recorded in BENCH_PIDS so that bench_cleanup can stop exactly those by PID.
# shellcheck shell=bash

BENCH_PIDS=()
BENCH_TMP=""
BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# build_pgmux OUT [symbols]: pgmux as it ships, the Dockerfile's build (CGO_ENABLED=0
# -trimpath -ldflags "-s -w": a static binary whose OS threads get Go-allocated stacks
# instead of glibc pthread stacks and malloc arenas; cmd/pgmux TestBuildsMatchTheImage
# keeps the two in step), run from the repository root. With "symbols" the symbol table
# stays (-s -w left out; nothing mapped at run time differs) for profilers that name
# functions: callgrind (instr.sh, logins.sh: callgrind_setup), perf (syscalls.sh).
build_pgmux() {
	local ldflags=(-ldflags "-s -w")
	[[ ${2:-} == symbols ]] && ldflags=()
	(cd "$BENCH_ROOT" && CGO_ENABLED=0 go build -trimpath "${ldflags[@]+"${ldflags[@]}"}" -o "$1" ./cmd/pgmux)
}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

is_root() { [[ $(id -u) -eq 0 ]]; }

# pg_bindir prints the directory holding initdb/postgres/pgbench (PostgreSQL 15 preferred).
pg_bindir() {
	local d
	for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/16/bin /usr/lib/postgresql/17/bin; do
		[[ -x $d/postgres ]] && { echo "$d"; return; }
	done
	command -v pg_config >/dev/null && [[ -x "$(pg_config --bindir)/postgres" ]] && { pg_config --bindir; return; }
	return 1
}

# ensure_tools PKG:FILE... installs missing Debian packages when root (daemons kept from
# starting), else prints what is missing and fails.
ensure_tools() {
	local missing=() spec pkg file
	for spec in "$@"; do
		pkg=${spec%%:*} file=${spec#*:}
		[[ -e $file ]] || missing+=("$pkg")
	done
	((${#missing[@]} == 0)) && return 0
	if ! is_root; then
		die "missing: ${missing[*]} (install with: sudo apt-get install ${missing[*]})"
	fi
	log "installing ${missing[*]}"
	local policy=/usr/sbin/policy-rc.d made_policy=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && made_policy=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
	((made_policy)) && rm -f "$policy"
	return 0
}

# as_pg_user CMD... runs CMD as the postgres OS user when root (PostgreSQL and PgBouncer
# refuse root), else as ourselves. setpriv execs, so $! of a backgrounded call is CMD's PID.
as_pg_user() {
	if is_root; then
		setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
	else
		"$@"
	fi
}

# exec_as_pg_user CMD... replaces the (sub)shell with CMD run as the postgres OS user when
# root, so the PID of a backgrounded subshell is CMD's.
exec_as_pg_user() {
	if is_root; then
		exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
	fi
	exec "$@"
}

# free_port [TAKEN...] prints a TCP port on 127.0.0.1 that nothing listens on and that is not
# one of TAKEN (ports chosen earlier but not yet bound). Bounded tries.
free_port() {
	local i p
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 12000)) # below the kernel's ephemeral range (32768+), so no client socket holds it
		[[ " $* " == *" $p "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# wait_port PORT [SECONDS] waits until something accepts on 127.0.0.1:PORT.
wait_port() {
	local port=$1 secs=${2:-30} i
	for ((i = 0; i < secs * 10; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

bench_tmpdir() {
	BENCH_TMP=$(mktemp -d /tmp/pgmux-bench.XXXXXX)
	chmod 0755 "$BENCH_TMP" # the postgres OS user must reach its data dir and config
}

track_pid() { BENCH_PIDS+=("$1"); }

# stop_pid PID [SECONDS]: SIGINT, wait (bounded), then SIGKILL. Only PIDs we started.
# SIGINT is the postmaster's fast shutdown and the poolers' safe shutdown (PgBouncer's and
# pgmux's: idle clients are closed at once; SIGTERM would wait for every client to leave);
# pgbench and the Go helpers simply exit.
stop_pid() {
	local pid=$1 secs=${2:-10} i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -INT "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

bench_cleanup() {
	local i
	for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do
		stop_pid "${BENCH_PIDS[$i]}" 10
	done
	wait 2>/dev/null || true
	if [[ -n $BENCH_TMP && -d $BENCH_TMP && ${BENCH_KEEP_TMP:-0} != 1 ]]; then
		rm -rf "$BENCH_TMP"
	fi
}

# start_postgres DIR PORT MAX_CONNECTIONS: initdb (trust on loopback) and start postgres in
# the foreground of a background job; sets PG_PID, PG_PORT and PG_DATA. Settings favour a throwaway benchmark
# server: no fsync, so runs measure the pooler path, not the disk.
start_postgres() {
	local dir=$1 port=$2 maxconn=${3:-300} bin
	bin=$(pg_bindir) || die "PostgreSQL server binaries not found"
	mkdir -p "$dir"
	is_root && chown postgres:postgres "$dir"
	as_pg_user "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync --no-instructions \
		>"$dir/initdb.log" 2>&1 </dev/null || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
	cat >"$dir/data/pg_hba.conf" <<-EOF
		local all all trust
		host  all all 127.0.0.1/32 trust
	EOF
	(exec_as_pg_user "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" \
		-c listen_addresses=127.0.0.1 -c max_connections="$maxconn" \
		-c shared_buffers=256MB -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
		-c logging_collector=off -c log_min_messages=warning) \
		>"$dir/postgres.log" 2>&1 </dev/null &
	PG_PID=$! # the postmaster itself (exec), so stop_pid's SIGINT is its fast shutdown
	PG_PORT=$port PG_DATA=$dir/data
	track_pid "$PG_PID"
	local i
	for ((i = 0; i < 300; i++)); do
		"$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres </dev/null && return 0
		kill -0 "$PG_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$dir/postgres.log" >&2
	die "postgres did not start"
}

# pgbench_init SCALE: pgbench -i -s SCALE on the PostgreSQL of start_postgres (PG_PORT),
# its output in $BENCH_TMP/init.log, shown if it fails.
pgbench_init() {
	"$(pg_bindir)/pgbench" -i -s "$1" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres postgres </dev/null >"$BENCH_TMP/init.log" 2>&1 ||
		{ cat "$BENCH_TMP/init.log" >&2; die "pgbench -i failed"; }
}

# proc_cpu_ticks PID: utime+stime (fields 14+15 of /proc/PID/stat) in clock ticks.
proc_cpu_ticks() {
	local stat rest
	stat=$(<"/proc/$1/stat") || { echo 0; return; }
	rest=${stat##*) } # fields from 3 on; the command name may hold spaces
	# shellcheck disable=SC2086
	set -- $rest
	echo $((${12} + ${13}))
}

# proc_rss_kb PID: VmRSS in kB.
proc_rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# raise_nofile: soft limit up to the hard limit (at most 65536).
raise_nofile() {
	local hard
	hard=$(ulimit -Hn)
	[[ $hard == unlimited ]] && hard=65536
	((hard > 65536)) && hard=65536
	ulimit -n "$hard" 2>/dev/null || true
	if is_root && (($(ulimit -n) < 20000)); then
		ulimit -Hn 65536 2>/dev/null && ulimit -n 65536 2>/dev/null || true
	fi
}

# now_us: the wall clock in microseconds.
now_us() { date +%s%6N; }

# idle_clients_ready OUT PID STEPS PAUSE: waits until bench/cmd/idleclients (PID, its
# output in OUT) says "ready" (every client logged in), at most STEPS checks PAUSE seconds
# apart; fails when it did not, or exited first.
idle_clients_ready() {
	local out=$1 pid=$2 steps=$3 pause=$4 i
	for ((i = 0; i < steps; i++)); do
		grep -q '^ready' "$out" && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep "$pause"
	done
	grep -q '^ready' "$out"
}

# sleep_until START_US SECONDS: sleep until SECONDS after START_US (now_us), at once if past.
sleep_until() {
	sleep "$(awk -v s="$1" -v n="$(now_us)" -v w="$2" 'BEGIN {d = w - (n - s) / 1e6; print (d > 0 ? d : 0)}')"
}

# pg_cpu_ticks PG_PID: PostgreSQL's CPU so far in clock ticks: the postmaster's own and its
# reaped children's (utime stime cutime cstime), plus utime+stime of every live child.
pg_cpu_ticks() {
	local pid=$1 total=0 f stat rest
	stat=$(<"/proc/$pid/stat")
	rest=${stat##*) }
	# shellcheck disable=SC2086
	set -- $rest
	total=$((${12} + ${13} + ${14} + ${15}))
	for f in $(pgrep -P "$pid"); do
		{ stat=$(<"/proc/$f/stat"); } 2>/dev/null || continue # it may have just exited
		rest=${stat##*) }
		# shellcheck disable=SC2086
		set -- $rest
		total=$((total + ${12} + ${13}))
	done
	echo "$total"
}

# us_per_tx TICKS TX: clock ticks of CPU per transaction, in microseconds.
us_per_tx() { awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN {printf "%.2f", n ? t / hz * 1e6 / n : 0}'; }

# scram_logins PASSWORD USERLIST: from now on the PostgreSQL of start_postgres (PG_PORT,
# PG_DATA) takes TCP logins with SCRAM-SHA-256 only: the postgres role gets PASSWORD as a
# SCRAM secret, USERLIST (an auth_file for both poolers) gets the server's own verifier
# from pg_authid, and PGPASSWORD is exported for pgbench and psql. A pooler holding the
# verifier checks a client's proof with two hashes and logs in to PostgreSQL with the
# client key the proof carries (SCRAM pass-through), so no pooler runs PBKDF2 per login
# and logins cost the poolers as little as they can. Sets BENCH_VERIFIER.
scram_logins() {
	local password=$1 userlist=$2 bin
	bin=$(pg_bindir)
	_psql() { "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres "$@" </dev/null; }
	_psql -c "SET password_encryption = 'scram-sha-256'" -c "ALTER ROLE postgres PASSWORD '$password'"
	BENCH_VERIFIER=$(_psql -At -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'")
	[[ $BENCH_VERIFIER == SCRAM-SHA-256* ]] || die "no SCRAM verifier for postgres"
	cat >"$PG_DATA/pg_hba.conf" <<-EOT
		local all all trust
		host  all all 127.0.0.1/32 scram-sha-256
	EOT
	_psql -c "SELECT pg_reload_conf()" >/dev/null
	printf '"postgres" "%s"\n' "$BENCH_VERIFIER" >"$userlist"
	chmod 0644 "$userlist"
	export PGPASSWORD=$password
}

# write_pooler_ini FILE PORT USERLIST [LINE...]: the pgbouncer.ini both poolers run from:
# one database (the PostgreSQL of start_postgres), transaction pooling, pool size
# POOL_SIZE (default 20), SCRAM logins against USERLIST, no unix socket, no per-connection
# logging, a relative pidfile (each pooler runs in its own directory); LINEs are added to
# [pgbouncer].
write_pooler_ini() {
	local file=$1 port=$2 userlist=$3
	shift 3
	{
		cat <<-EOT
			[databases]
			postgres = host=127.0.0.1 port=$PG_PORT dbname=postgres

			[pgbouncer]
			listen_addr = 127.0.0.1
			listen_port = $port
			unix_socket_dir =
			auth_type = scram-sha-256
			auth_file = $userlist
			pidfile = pooler.pid
			pool_mode = transaction
			default_pool_size = ${POOL_SIZE:-20}
			max_client_conn = 12000
			ignore_startup_parameters = extra_float_digits
			log_connections = 0
			log_disconnections = 0
		EOT
		(($# > 0)) && printf '%s\n' "$@"
	} >"$file"
	chmod 0644 "$file"
}

# start_pooler NAME PORT CMD...: starts a pooler in its own directory $BENCH_TMP/NAME
# (log $BENCH_TMP/NAME.log) and waits until it accepts on PORT; sets POOLER_PID (the
# pooler's own PID). A NAME starting with "pgbouncer" runs as the postgres OS user when
# root (PgBouncer refuses root).
start_pooler() {
	local name=$1 port=$2 dir=$BENCH_TMP/$1 log=$BENCH_TMP/$1.log
	shift 2
	mkdir -p "$dir"
	if [[ $name == pgbouncer* ]]; then
		is_root && chown postgres:postgres "$dir"
		(cd "$dir" && exec_as_pg_user "$@") >>"$log" 2>&1 </dev/null &
	else
		(cd "$dir" && exec "$@") >>"$log" 2>&1 </dev/null &
	fi
	POOLER_PID=$!
	track_pid "$POOLER_PID"
	wait_port "$port" 20 || { cat "$log" >&2; die "$name did not start"; }
}

# stop_pooler PID PORT: stops it by PID (bounded) and waits until PORT is free again.
stop_pooler() {
	local i
	stop_pid "$1" 15
	wait "$1" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null || return 0
		sleep 0.1
	done
}

# callgrind_setup MAX_CONNECTIONS SCALE [BUILDS...]: what instr.sh and logins.sh share:
# valgrind and pgbench present, the temp dir, BINS (the builds given, else ./cmd/pgmux
# built), a throwaway PostgreSQL with pgbench's tables at SCALE, and CONF with a userlist
# holding the server's SCRAM verifier. Sets PGBENCH, BINS and CONF.
callgrind_setup() {
	local maxconn=$1 scale=$2
	shift 2
	command -v valgrind >/dev/null && command -v callgrind_control >/dev/null || die "needs valgrind (apt-get install valgrind)"
	ensure_tools postgresql-15:/usr/lib/postgresql/15/bin/pgbench
	PGBENCH=$(pg_bindir)/pgbench
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	bench_tmpdir
	BINS=("$@")
	if ((${#BINS[@]} == 0)); then
		build_pgmux "$BENCH_TMP/pgmux" symbols
		BINS=("$BENCH_TMP/pgmux")
	fi
	start_postgres "$BENCH_TMP/pg" "$(free_port)" "$maxconn"
	CONF=$BENCH_TMP/conf
	mkdir -p "$CONF"
	scram_logins bench-secret "$CONF/userlist.txt"
	pgbench_init "$scale"
}

# dump_ir FILE: the instructions a callgrind dump counted.
dump_ir() { awk '/^(summary|totals):/ {print $2; exit}' "$1" 2>/dev/null; }
