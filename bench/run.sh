#!/usr/bin/env bash
# Side-by-side benchmark: pgmux vs PgBouncer vs direct PostgreSQL, on this machine only.
#
#   bench/run.sh            # full run (~33 min on 2 cores)
#   bench/run.sh --quick    # ~3-4 min: -S simple/extended at 50 and 500 clients, idle 1000
#   bench/run.sh --reps 5   # repetitions per point (median is reported; default 3)
#   bench/run.sh --keep     # keep the temp dir (logs, raw per-transaction pgbench logs)
#   bench/run.sh --idle-only --reps 3   # only the idle-client points (2000 and 10000 unless
#                                       # BENCH_IDLE says), the targets alternating per rep
#   PGMUX_BIN=path bench/run.sh   # benchmark a prebuilt pgmux instead of building ./cmd/pgmux
#   PGMUX_BIN_B=path bench/run.sh # also a second pgmux (target pgmux-b, e.g. an older commit),
#                                 # alternating with the others; scratch output only
#   PGMUX_ENV_B="GOMAXPROCS=1" bench/run.sh  # pgmux-b is this build (or PGMUX_BIN_B) run with
#                                 # these environment variables (space-separated VAR=V)
#   PGMUX_ENV="PGMUX_CLIENT_LOOP=1" ...   # the same for the pgmux target
#
# It starts a throwaway PostgreSQL 15 that takes TCP logins with SCRAM-SHA-256 only, then
# PgBouncer (as the postgres OS user) and pgmux from ONE pgbouncer.ini (pgmux only gets
# --listen for its own port) whose auth_file holds the server's own SCRAM verifier, so
# neither pooler derives keys per login (see scram_logins in bench/lib.sh), and runs each
# workload against pgmux, PgBouncer and direct Postgres in turn, the targets alternating
# within every repetition. Per run: tps (pgbench, without connection
# time), p50/p99 latency (from pgbench's per-transaction -l logs), the pooler's CPU time per
# transaction (utime+stime of /proc/PID/stat around a fixed -t run). Then idle clients:
# bench/cmd/idleclients holds N logged-in connections and the pooler's VmRSS delta / N is the
# cost of one idle client. Output: bench/results/latest.md, bench/results/*.png (each stamped
# with the run's date and commit), bench/results/raw.tsv, bench/results/idle.tsv,
# bench/results/tail.tsv (where each run's latency tail is: bench/cmd/tailshape),
# bench/results/meta.txt (the run's header); a full run also rewrites README.md's block.
set -euo pipefail
export HOME="${HOME:-/root}"
export PATH="/usr/local/go/bin:${PATH}:/usr/local/sbin:/usr/sbin:/sbin"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"

MODE=full
REPS=${BENCH_REPS:-3}
IDLE_ONLY=false
while (($# > 0)); do
	case $1 in
	--quick) MODE=quick ;;
	--full) MODE=full ;;
	--idle-only) IDLE_ONLY=true ;;
	--reps) REPS=$2; shift ;;
	--keep) BENCH_KEEP_TMP=1 ;;
	-h | --help) sed -n '2,26p' "$0"; exit 0 ;;
	*) die "unknown argument $1 (try --help)" ;;
	esac
	shift
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] && ((REPS <= 20)) || die "--reps must be 1..20"

SCALE=10
POOL_SIZE=20
PG_MAX_CONN=300
if [[ $MODE == quick ]]; then
	WORKLOADS=(select)
	QMODES=(simple extended)
	CLIENTS=(50 500)
	IDLE_NS=(1000)
	CHURN=0
	PACED=()
else
	WORKLOADS=(select tpcb)
	QMODES=(simple extended prepared)
	CLIENTS=(1 50 500 5000)
	IDLE_NS=(2000 10000) # the points issue 14 names
	CHURN=1
	PACED=(500 2000)
fi
# Idle points run once per target, or REPS times (alternating) with --idle-only.
IDLE_REPS=1
if $IDLE_ONLY; then
	WORKLOADS=()
	CHURN=0
	PACED=()
	IDLE_NS=(2000 10000)
	IDLE_REPS=$REPS
fi
# Env overrides (space-separated), for a custom subset: BENCH_WORKLOADS="select tpcb"
# (or rows: a 100-row select, not in the full run),
# BENCH_MODES="simple extended prepared", BENCH_CLIENTS="1 50", BENCH_IDLE="1000",
# BENCH_CHURN=0|1, BENCH_PACED="500 2000" (clients of the paced points, "" for none),
# BENCH_OUT=dir (default bench/results for a full run, else
# bench/results/scratch).
[[ -n ${BENCH_WORKLOADS:-} ]] && read -ra WORKLOADS <<<"$BENCH_WORKLOADS"
[[ -n ${BENCH_MODES:-} ]] && read -ra QMODES <<<"$BENCH_MODES"
[[ -n ${BENCH_CLIENTS:-} ]] && read -ra CLIENTS <<<"$BENCH_CLIENTS"
[[ -n ${BENCH_IDLE+x} ]] && read -ra IDLE_NS <<<"$BENCH_IDLE"
[[ -n ${BENCH_CHURN:-} ]] && CHURN=$BENCH_CHURN
[[ -n ${BENCH_PACED+x} ]] && read -ra PACED <<<"$BENCH_PACED"
TARGETS=(pgmux pgbouncer direct)
[[ -n ${PGMUX_BIN_B:-}${PGMUX_ENV_B:-} ]] && TARGETS=(pgmux pgmux-b pgbouncer direct)
PASSWORD=bench-secret

command -v go >/dev/null || die "go not found on PATH"
ensure_tools postgresql-15:/usr/lib/postgresql/15/bin/pgbench pgbouncer:/usr/sbin/pgbouncer
PGBIN=$(pg_bindir)
PGBENCH=$PGBIN/pgbench
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)

raise_nofile
(($(ulimit -n) >= 12000)) || log "warning: ulimit -n is $(ulimit -n); 5000-client and 10000-idle runs may fail"

trap bench_cleanup EXIT
trap 'exit 130' INT TERM
bench_tmpdir
# bench/results holds the latest full run of this tree, which README.md quotes (a full
# run rewrites its block). A quick pass, a custom subset or a prebuilt binary goes to
# bench/results/scratch (not kept in git) unless BENCH_OUT says otherwise.
OFFICIAL=false
if [[ $MODE == full && $IDLE_ONLY == false && -z ${PGMUX_BIN:-}${PGMUX_BIN_B:-}${PGMUX_ENV_B:-}${PGMUX_ENV:-}${BENCH_WORKLOADS:-}${BENCH_MODES:-}${BENCH_CLIENTS:-}${BENCH_IDLE:-}${BENCH_CHURN:-}${BENCH_PACED+x} ]]; then
	OFFICIAL=true
	RESULTS=${BENCH_OUT:-$BENCH_ROOT/bench/results}
else
	RESULTS=${BENCH_OUT:-$BENCH_ROOT/bench/results/scratch}
fi
mkdir -p "$RESULTS"
RAW=$BENCH_TMP/raw.tsv
IDLE=$BENCH_TMP/idle.tsv
TAIL=$BENCH_TMP/tail.tsv
printf 'target\tworkload\tmode\tclients\trep\ttps\tp50_ms\tp99_ms\tcpu_us_per_tx\ttx\tstatus\tcpu_us_per_tx_after_logins\tcpu_us_per_login\n' >"$RAW"
printf 'target\tclients\trss_before_kb\trss_after_kb\tbytes_per_client\tstatus\n' >"$IDLE"
printf 'target\tworkload\tmode\tclients\trep\tshape\n' >"$TAIL"
STARTED=$(date +%s)

log "building pgmux and the bench helpers"
mkdir -p "$BENCH_TMP/bin"
if [[ -n ${PGMUX_BIN:-} ]]; then
	cp "$PGMUX_BIN" "$BENCH_TMP/bin/pgmux" # a prebuilt binary, e.g. of another commit
else
	build_pgmux "$BENCH_TMP/bin/pgmux"
fi
if [[ -n ${PGMUX_BIN_B:-} ]]; then
	cp "$PGMUX_BIN_B" "$BENCH_TMP/bin/pgmux-b"
elif [[ -n ${PGMUX_ENV_B:-} ]]; then
	cp "$BENCH_TMP/bin/pgmux" "$BENCH_TMP/bin/pgmux-b"
fi
read -ra ENV_B <<<"${PGMUX_ENV_B:-}"
read -ra ENV_A <<<"${PGMUX_ENV:-}"
# The bench tools are their own Go module (bench/go.mod), so plotting stays out of pgmux's.
(cd "$BENCH_ROOT/bench" && go build -o "$BENCH_TMP/bin/idleclients" ./cmd/idleclients &&
	go build -o "$BENCH_TMP/bin/report" ./cmd/report && go build -o "$BENCH_TMP/bin/tailshape" ./cmd/tailshape)

declare -A PORT PID
PORT[direct]=$(free_port)
for target in "${TARGETS[@]}"; do
	[[ $target == direct ]] || PORT[$target]=$(free_port "${PORT[@]}")
done
log "PostgreSQL on 127.0.0.1:${PORT[direct]} (max_connections=$PG_MAX_CONN)"
start_postgres "$BENCH_TMP/pg" "${PORT[direct]}" "$PG_MAX_CONN"
CONF=$BENCH_TMP/conf
mkdir -p "$CONF"
scram_logins "$PASSWORD" "$CONF/userlist.txt"
log "pgbench -i -s $SCALE"
pgbench_init "$SCALE"
cat >"$BENCH_TMP/rows.sql" <<'SQL'
\set a random(1, 90000)
SELECT aid, bid, abalance, filler FROM pgbench_accounts WHERE aid BETWEEN :a AND :a + 99;
SQL

# PgBouncer >= 1.21 forwards protocol-level prepared statements (max_prepared_statements).
PGB_VERSION=$("$PGBOUNCER" --version | awk 'NR==1 {print $2}')
PGB_PREPARED=0
if [[ $(printf '%s\n1.21.0\n' "$PGB_VERSION" | sort -V | head -n1) == 1.21.0 ]]; then PGB_PREPARED=1; fi

# One pgbouncer.ini for every pooler (write_pooler_ini in bench/lib.sh); pgmux only gets
# --listen for its own port.
PREPARED_LINE=()
((PGB_PREPARED)) && PREPARED_LINE=("max_prepared_statements = 200")
write_pooler_ini "$CONF/pgbouncer.ini" "${PORT[pgbouncer]}" "$CONF/userlist.txt" "${PREPARED_LINE[@]+"${PREPARED_LINE[@]}"}"

# start_target TARGET (re)starts a pooler from the shared ini and records its PID. The
# idle-memory test uses fresh processes, so earlier load does not skew RSS.
start_target() {
	case $1 in
	pgbouncer) start_pooler pgbouncer "${PORT[pgbouncer]}" "$PGBOUNCER" "$CONF/pgbouncer.ini" ;;
	pgmux-b) start_pooler "$1" "${PORT[$1]}" env "${ENV_B[@]+"${ENV_B[@]}"}" "$BENCH_TMP/bin/$1" --listen "127.0.0.1:${PORT[$1]}" "$CONF/pgbouncer.ini" ;;
	pgmux*) start_pooler "$1" "${PORT[$1]}" env "${ENV_A[@]+"${ENV_A[@]}"}" "$BENCH_TMP/bin/$1" --listen "127.0.0.1:${PORT[$1]}" "$CONF/pgbouncer.ini" ;;
	esac
	PID[$1]=$POOLER_PID
}
restart_pooler() {
	stop_pooler "${PID[$1]}" "${PORT[$1]}"
	start_target "$1"
}
for target in "${TARGETS[@]}"; do
	[[ $target == direct ]] || start_target "$target"
done
log "PgBouncer $PGB_VERSION on 127.0.0.1:${PORT[pgbouncer]}, pgmux${PGMUX_ENV:+ (with $PGMUX_ENV)} on 127.0.0.1:${PORT[pgmux]}${PORT[pgmux-b]:+, pgmux-b (${PGMUX_BIN_B:-this build}${PGMUX_ENV_B:+ with $PGMUX_ENV_B}) on 127.0.0.1:${PORT[pgmux-b]}}"

# txs_per_client WORKLOAD CLIENTS: fixed work sized for ~2-3 s per run on 2 cores.
txs_per_client() {
	local total
	case $1 in
	select) total=$([[ $MODE == quick ]] && echo 80000 || echo 40000) ;;
	tpcb) total=6000 ;;
	rows) total=10000 ;;
	churn) total=1000 ;;
	paced) echo 6; return ;; # each client 6 transactions, about 2 s apart (run_point's -R)
	esac
	case $2 in 1) total=$((total / 4)) ;; esac
	local t=$((total / $2))
	((t < 2)) && t=2
	echo "$t"
}

# na_reason TARGET WORKLOAD MODE CLIENTS prints why a point cannot run, or nothing.
na_reason() {
	if [[ $1 == direct ]] && (($4 > PG_MAX_CONN - 20)); then echo "n/a: > max_connections"; return; fi
	if [[ $1 == pgbouncer && $3 == prepared ]] && ((!PGB_PREPARED)); then echo "n/a: PgBouncer $PGB_VERSION has no prepared statements"; return; fi
}

# fd_count PID: how many descriptors the process holds (0 when it is gone).
fd_count() { { ls -U "/proc/$1/fd" 2>/dev/null || true; } | wc -l; }

# logins_done PID PGBENCH_PID FDS: waits until the pooler PID holds FDS descriptors (every
# client connected: pgbench logs all of its clients in before its first transaction,
# -C aside) and prints its CPU ticks then; prints nothing if pgbench ends first. It
# polls every 0.1 s, and every 10 ms for the last tenth of the clients; at 5,000
# clients the transactions that begin before it notices cost the login phase about 2
# µs a login.
logins_done() {
	local pid=$1 bpid=$2 want=$3 from=$4 n
	while kill -0 "$bpid" 2>/dev/null; do
		n=$(fd_count "$pid")
		if ((n >= want)); then
			proc_cpu_ticks "$pid"
			return
		fi
		if ((n - from >= (want - from) * 9 / 10)); then sleep 0.01; else sleep 0.1; fi
	done
}

# run_point TARGET WORKLOAD MODE CLIENTS REP: one pgbench run; appends a row to $RAW.
# Its CPU per transaction (cpu_us_per_tx) is the pooler's utime+stime over the whole
# run, the clients' logins included (at 5,000 clients, one login per 8 transactions);
# for a run whose clients all log in first (not churn) it is also split at the moment
# every client has connected: cpu_us_per_tx_after_logins (the transactions and the
# clients' departures) and cpu_us_per_login (what came before, per client).
run_point() {
	local target=$1 workload=$2 qmode=$3 clients=$4 rep=$5
	local na port pid t per jobs logdir out status=ok tps=0 tx=0 p50=0 p99=0 cpu=0 t0=0 t1=0
	local fd0 bpid tl="" cpu_tx="" cpu_login=""
	na=$(na_reason "$target" "$workload" "$qmode" "$clients")
	if [[ -n $na ]]; then
		printf '%s\t%s\t%s\t%s\t%s\t\t\t\t\t\t%s\t\t\n' "$target" "$workload" "$qmode" "$clients" "$rep" "$na" >>"$RAW"
		return
	fi
	port=${PORT[$target]}
	pid=${PID[$target]:-}
	per=$(txs_per_client "$workload" "$clients")
	jobs=$((clients < 2 ? 1 : 2))
	local args=(-n -M "$qmode" -c "$clients" -j "$jobs" -t "$per")
	case $workload in
	select) args+=(-S) ;;
	# A result of 100 rows (~12 KB), as an application's list pages read: the relay of
	# rows, which -S (one row) hardly shows.
	rows) args+=(-f "$BENCH_TMP/rows.sql") ;;
	churn) args+=(-S -C) ;;
	# Clients idle between requests, as an application's pooled connections are: the rate
	# is half the client count, so each client sends about every 2 s.
	paced) args+=(-S -R $((clients / 2))) ;;
	esac
	logdir=$BENCH_TMP/pglog/$target-$workload-$qmode-$clients-$rep
	mkdir -p "$logdir"
	[[ -n $pid ]] && fd0=$(fd_count "$pid") && t0=$(proc_cpu_ticks "$pid")
	timeout 300 "$PGBENCH" "${args[@]}" -l --log-prefix="$logdir/tx" \
		-h 127.0.0.1 -p "$port" -U postgres postgres </dev/null >"$logdir/out" 2>&1 &
	bpid=$!
	# (a descriptor or two of the previous run's clients may still be closing: a few
	# short of every client's is enough, at most one login in 500 early)
	[[ -n $pid && $workload != churn ]] && tl=$(logins_done "$pid" "$bpid" $((fd0 + clients - clients / 500)) "$fd0")
	wait "$bpid" || status=fail
	out=$(<"$logdir/out")
	[[ -n $pid ]] && t1=$(proc_cpu_ticks "$pid")
	tx=$(awk -F': ' '/^number of transactions actually processed/ {split($2, a, "/"); print a[1]+0}' <<<"$out")
	tps=$(awk '/^tps = / {print $3}' <<<"$out" | tail -n1)
	tx=${tx:-0} tps=${tps:-0}
	if ((tx == 0)); then
		status=fail
		echo "$out" | tail -n 5 >&2
	fi
	if [[ $status == fail ]]; then
		printf '%s\n' "$out" >"$logdir/pgbench.out"
	fi
	# pgbench -l lines: client tx_no latency_us script_no epoch_s epoch_us
	read -r p50 p99 < <(cat "$logdir"/tx* 2>/dev/null | awk '{print $3}' | sort -n |
		awk '{v[NR] = $1} END { if (NR == 0) { print 0, 0; exit }
			i50 = int(NR * 0.50 + 0.5); if (i50 < 1) i50 = 1
			i99 = int(NR * 0.99 + 0.5); if (i99 < 1) i99 = 1; if (i99 > NR) i99 = NR
			printf "%.3f %.3f\n", v[i50] / 1000, v[i99] / 1000 }')
	if [[ -n $pid ]] && ((tx > 0)); then
		cpu=$(us_per_tx $((t1 - t0)) "$tx")
		if [[ -n $tl ]]; then
			cpu_tx=$(us_per_tx $((t1 - tl)) "$tx")
			cpu_login=$(us_per_tx $((tl - t0)) "$clients")
		fi
	else
		cpu=""
	fi
	# Where the tail is (bench/cmd/tailshape): the clients' first, last or other
	# transactions, and how far the order they were served in strayed from the order they
	# were sent; one line a run of 500 clients or more in tail.tsv.
	if ((tx > 0 && clients >= 500)) && [[ $workload != churn ]]; then
		printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$workload" "$qmode" "$clients" "$rep" \
			"$("$BENCH_TMP/bin/tailshape" "$logdir" | cut -d' ' -f2-)" >>"$TAIL"
	fi
	[[ ${BENCH_KEEP_TMP:-0} == 1 ]] || rm -rf "$logdir"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$workload" "$qmode" "$clients" "$rep" \
		"$tps" "$p50" "$p99" "$cpu" "$tx" "$status" "$cpu_tx" "$cpu_login" >>"$RAW"
	printf '    %-9s %-6s %-8s c=%-5s rep %s: tps %10s  p50 %7s ms  p99 %8s ms  cpu %7s us/tx (%s after the logins, %s a login)  %s\n' \
		"$target" "$workload" "$qmode" "$clients" "$rep" "$tps" "$p50" "$p99" "${cpu:--}" "${cpu_tx:--}" "${cpu_login:--}" "$status" >&2
}

# Idle clients: RSS of the pooler before and while N logged-in clients sit idle.
idle_point() {
	local target=$1 n=$2 port pid before after ipid i status=ok out=$BENCH_TMP/idle-$1-$2.out
	restart_pooler "$target"
	port=${PORT[$target]}
	pid=${PID[$target]}
	# warm up: one logged-in client and one transaction, so a server connection exists
	"$PGBENCH" -n -S -t 1 -c 1 -h 127.0.0.1 -p "$port" -U postgres postgres </dev/null >/dev/null 2>&1 || true
	sleep 1
	before=$(proc_rss_kb "$pid")
	"$BENCH_TMP/bin/idleclients" -addr "127.0.0.1:$port" -n "$n" -user postgres -password "$PASSWORD" -db postgres -hold 120s \
		>"$out" 2>&1 </dev/null &
	ipid=$!
	track_pid "$ipid"
	# at most 300 s: 10,000 SCRAM logins (idleclients derives each client's keys) took 30 s
	# at load 20 and more than 90 s at times on a busy 2-core machine
	if idle_clients_ready "$out" "$ipid" 3000 0.1; then
		sleep 5 # steady state: pgmux parks clients idle for a second and returns their stacks
		after=$(proc_rss_kb "$pid")
	else
		status=fail after=$before
		# say which way it failed: idleclients still logging in after 90 s, or gone (with its
		# exit status and output), and whether the pooler still runs
		local why="idleclients exited"
		kill -0 "$ipid" 2>/dev/null && why="idleclients not ready after 300 s"
		kill -0 "$pid" 2>/dev/null || why="$why; $target is gone"
		echo "    $target $n idle clients failed: $why; idleclients output:" >&2
		cat "$out" >&2
	fi
	stop_pid "$ipid" 10
	local rc=0
	wait "$ipid" 2>/dev/null || rc=$?
	[[ $status == ok ]] || echo "    idleclients exit status $rc" >&2
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$n" "$before" "$after" $(((after - before) * 1024 / n)) "$status" >>"$IDLE"
	printf '    %-9s %6s idle clients: RSS %s -> %s kB, %s bytes/client %s (logged in in %s s)\n' "$target" "$n" "$before" "$after" \
		$(((after - before) * 1024 / n)) "$status" "$(awk '/^ready/ {sub(/s$/, "", $3); print $3}' "$out")" >&2
}
for ((rep = 1; rep <= IDLE_REPS; rep++)); do
	for n in "${IDLE_NS[@]+"${IDLE_NS[@]}"}"; do
		log "$n idle clients (fresh pooler processes), rep $rep/$IDLE_REPS; $(uptime | sed 's/.*load/load/')"
		for target in "${TARGETS[@]}"; do
			[[ $target == direct ]] || idle_point "$target" "$n"
		done
	done
done
# the workloads start on fresh poolers too
if ((${#WORKLOADS[@]} > 0)); then
	for target in "${TARGETS[@]}"; do
		[[ $target == direct ]] || restart_pooler "$target"
	done
fi


# Workloads: for every point, repetitions alternate pgmux, pgbouncer, direct.
for workload in "${WORKLOADS[@]+"${WORKLOADS[@]}"}"; do
	for qmode in "${QMODES[@]}"; do
		for clients in "${CLIENTS[@]}"; do
			log "$workload -M $qmode, $clients clients"
			for ((rep = 1; rep <= REPS; rep++)); do
				for target in "${TARGETS[@]}"; do
					run_point "$target" "$workload" "$qmode" "$clients" "$rep"
				done
			done
		done
	done
done
if ((CHURN)); then
	log "connection churn: pgbench -C -S, 4 clients"
	for ((rep = 1; rep <= REPS; rep++)); do
		for target in "${TARGETS[@]}"; do
			run_point "$target" churn simple 4 "$rep"
		done
	done
fi
for clients in "${PACED[@]+"${PACED[@]}"}"; do
	log "paced clients: pgbench -S -R $((clients / 2)), $clients clients (each about every 2 s)"
	for ((rep = 1; rep <= REPS; rep++)); do
		for target in "${TARGETS[@]}"; do
			run_point "$target" paced simple "$clients" "$rep"
		done
	done
done

cp "$RAW" "$RESULTS/raw.tsv"
cp "$IDLE" "$RESULTS/idle.tsv"
cp "$TAIL" "$RESULTS/tail.tsv"
ELAPSED=$(($(date +%s) - STARTED))
log "report"
# A full run into bench/results also rewrites the README's benchmark block (its table, the
# run's date and commit, the plots): no figure there comes from anywhere else.
readme_args=()
if $OFFICIAL && [[ $RESULTS == "$BENCH_ROOT/bench/results" ]]; then
	readme_args=(-readme "$BENCH_ROOT/README.md")
fi
"$BENCH_TMP/bin/report" -raw "$RESULTS/raw.tsv" -idle "$RESULTS/idle.tsv" -out "$RESULTS" "${readme_args[@]}" \
	-meta "mode=$MODE" -meta "reps=$REPS" -meta "elapsed=${ELAPSED}s" -meta "auth=scram-verifier" \
	-meta "pgmux=${PGMUX_BIN:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- . ':!bench/results' ':!README.md' 2>/dev/null || echo +dirty)}" \
	-meta "pgbouncer=$PGB_VERSION" -meta "postgres=$("$PGBIN/postgres" --version | awk '{print $3}')" \
	-meta "cpus=$(nproc)" -meta "kernel=$(uname -r)" -meta "date=$(date -u +%Y-%m-%dT%H:%MZ)"
cat "$RESULTS/latest.md"
# Every target's medians (pgmux-b too, which the report leaves out), with the CPU and tps
# ratios to PgBouncer at the same point.
: >"$RESULTS/medians.md"
(($(wc -l <"$RESULTS/raw.tsv") > 1)) && awk -F'\t' 'NR > 1 && $11 == "ok" {k = $2 " " $3 " c=" $4; t[$1] = 1; p[k] = 1; n[$1, k]++; tps[$1, k, n[$1, k]] = $6; cpu[$1, k, n[$1, k]] = $9
	if ($12 != "") {s[$1, k]++; ctx[$1, k, s[$1, k]] = $12}}
function med(a, t, k, m,   i, j, x, v) {
	for (i = 1; i <= m; i++) v[i] = a[t, k, i] + 0
	for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) {x = v[i]; v[i] = v[j]; v[j] = x}
	return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
END {
	print "| point | target | tps | CPU us/tx | tps / PgBouncer | CPU / PgBouncer | CPU us/tx after the logins | after the logins / PgBouncer |"
	print "|---|---|--:|--:|--:|--:|--:|--:|"
	for (k in p) {
		m = n["pgbouncer", k]
		bt = m ? med(tps, "pgbouncer", k, m) : 0; bc = m ? med(cpu, "pgbouncer", k, m) : 0
		bx = s["pgbouncer", k] ? med(ctx, "pgbouncer", k, s["pgbouncer", k]) : 0
		for (x in t) {
			if (!n[x, k]) continue
			mt = med(tps, x, k, n[x, k]); mc = med(cpu, x, k, n[x, k])
			mx = s[x, k] ? med(ctx, x, k, s[x, k]) : 0
			printf "| %s | %s | %.0f | %s | %s | %s | %s | %s |\n", k, x, mt, mc ? sprintf("%.1f", mc) : "-", bt ? sprintf("%.2fx", mt / bt) : "-", bc && mc ? sprintf("%.2fx", mc / bc) : "-", mx ? sprintf("%.1f", mx) : "-", bx && mx ? sprintf("%.2fx", mx / bx) : "-"
		}
	}
}' "$RESULTS/raw.tsv" | { read -r h1; read -r h2; printf '%s\n%s\n' "$h1" "$h2"; sort; } | tee "$RESULTS/medians.md"
# Idle memory medians of every target (pgmux-b too), with the ratio to PgBouncer's.
awk -F'\t' 'NR > 1 && $6 == "ok" {k = $2; t[$1] = 1; p[k] = 1; n[$1, k]++; b[$1, k, n[$1, k]] = $5}
function med(t, k, m,   i, j, x, v) {
	for (i = 1; i <= m; i++) v[i] = b[t, k, i] + 0
	for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) {x = v[i]; v[i] = v[j]; v[j] = x}
	return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
END {
	for (k in p) for (x in t) if (n[x, k]) {
		vals = ""
		for (i = 1; i <= n[x, k]; i++) vals = vals (i > 1 ? " " : "") b[x, k, i]
		bp = n["pgbouncer", k] ? med("pgbouncer", k, n["pgbouncer", k]) : 0
		m = med(x, k, n[x, k])
		printf "| %s idle | %s | %.0f | %s | %s |\n", k, x, m, vals, bp ? sprintf("%.2fx", m / bp) : "-"
	}
}' "$RESULTS/idle.tsv" | sort -n | { printf '\n| idle clients | target | bytes/client median | runs | / PgBouncer |\n|--:|---|--:|---|--:|\n'; cat; } |
	tee -a "$RESULTS/medians.md"
log "wrote $RESULTS/latest.md and plots in $RESULTS (took ${ELAPSED}s)"
