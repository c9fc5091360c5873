#!/usr/bin/env bash
# pgmux's instructions per login, counted by valgrind (callgrind): pgbench -C -S (a new
# connection, SCRAM login against the server's verifier, for every transaction), 4
# clients. Like instr.sh, two runs of TX/2 and TX logins are counted apart and the figure
# is their difference over TX/2, so start-up and the warm-up stay out. It prints the
# figure and the calls per login of the runtime's stack growth (copystack), allocation
# (mallocgc) and SHA-256 blocks.
#
#   bench/logins.sh                     # ./cmd/pgmux
#   bench/logins.sh /tmp/pgmux-a /tmp/pgmux-b
#   BENCH_TX=400 BENCH_KEEP_TMP=1 bench/logins.sh   # keeps the dumps for callgrind_annotate
set -euo pipefail
export HOME="${HOME:-/root}"
export PATH="/usr/local/go/bin:${PATH}:/usr/local/sbin:/usr/sbin:/sbin"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$BENCH_ROOT"
TX=${BENCH_TX:-400}
CLIENTS=4
callgrind_setup 100 1 "$@"

# calls DUMP FUNCTION: how often FUNCTION was called in a dump (the fn= entry's calls=).
calls() {
	callgrind_annotate --auto=no --tree=caller --threshold=100 "$1" 2>/dev/null | awk -v fn="$2" '
		/^ *[0-9,]+ .*  < / { if (match($0, /\(([0-9,]+)x\)/)) { v = substr($0, RSTART + 1, RLENGTH - 3); gsub(",", "", v); pend += v }; next }
		/^ *[0-9,]+ .*\*  / { if (index($0, ":" fn " ") || index($0, ":" fn "\t")) { total += pend }; pend = 0; next }
		{ pend = 0 }
		END { print total + 0 }'
}
per_login() { awk -v a="$1" -v b="$2" -v n="$TX" 'BEGIN {printf "%.1f", (b - a) / (n / 2)}'; }
pgb() { "$PGBENCH" -n -S -C -c "$CLIENTS" -j 1 -t "$2" -h 127.0.0.1 -p "$1" -U postgres postgres </dev/null 2>&1; }

printf '| build | instructions per login | copystack | mallocgc | sha256 blocks |\n|---|--:|--:|--:|--:|\n'
i=0
for bin in "${BINS[@]}"; do
	i=$((i + 1))
	port=$(free_port "$PG_PORT")
	write_pooler_ini "$CONF/logins.ini" "$port" "$CONF/userlist.txt"
	dir=$BENCH_TMP/run$i
	mkdir -p "$dir"
	start_pooler "logins$i" "$port" env GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --cache-sim=no \
		--branch-sim=no --callgrind-out-file="$dir/cg.out" "$bin" "$CONF/logins.ini"
	pid=$POOLER_PID
	pgb "$port" 10 >/dev/null || die "warm-up through $bin failed"
	callgrind_control -z "$pid" >/dev/null
	pgb "$port" $((TX / 2 / CLIENTS)) >/dev/null || die "pgbench through $bin failed"
	callgrind_control -d "$pid" >/dev/null
	pgb "$port" $((TX / CLIENTS)) >/dev/null || die "pgbench through $bin failed"
	callgrind_control -d "$pid" >/dev/null
	stop_pooler "$pid" "$port"
	a=$dir/cg.out.1 b=$dir/cg.out.2
	[[ -s $a && -s $b ]] || die "no callgrind dumps for $bin"
	row="| $bin | $(per_login "$(dump_ir "$a")" "$(dump_ir "$b")")"
	for fn in runtime.copystack runtime.mallocgc crypto/internal/fips140/sha256.blockAVX2.abi0; do
		row+=" | $(per_login "$(calls "$a" "$fn")" "$(calls "$b" "$fn")")"
	done
	printf '%s |\n' "$row"
	[[ ${BENCH_KEEP_TMP:-0} == 1 ]] && log "$bin: callgrind dumps $a and $b" || rm -f "$dir"/cg.out*
done
