#!/usr/bin/env bash
# Installs what `make test` needs on Debian 12 when it is missing: PostgreSQL 15 (initdb,
# postgres, psql, pgbench), PgBouncer (comparison tests), gcc and libc headers (go test
# -race needs cgo), git, and the client drivers test/prepared and test/sticky run (asyncpg,
# ruby-pg, node-postgres, psycopg 3 and psycopg2). As root it installs them with apt-get
# (and npm for node-postgres); otherwise it fails, naming exactly what to install. Go
# itself must be there already.
#
#   scripts/deps.sh          # install what is missing (root), or say what is (not root)
#   scripts/deps.sh --check  # only say what is missing; exit 1 if anything is
set -euo pipefail

check_only=false
[[ ${1:-} == --check ]] && check_only=true

export DEBIAN_FRONTEND=noninteractive
log() { printf '==> %s\n' "$*"; }

# package -> a file that proves it is installed
declare -A want=(
	[postgresql-15]=/usr/lib/postgresql/15/bin/pgbench  # also initdb, pg_ctl, postgres; pulls in psql
	[pgbouncer]=/usr/sbin/pgbouncer                      # comparison tests and benchmarks
	[make]=/usr/bin/make
	[gcc]=/usr/bin/gcc                                   # go test -race needs cgo
	[libc6-dev]=/usr/include/stdio.h
	[git]=/usr/bin/git                                   # go build stamps VCS information
	[ca-certificates]=/etc/ssl/certs/ca-certificates.crt # module downloads
	[python3-asyncpg]=/usr/lib/python3/dist-packages/asyncpg/__init__.py # test/prepared drivers
	[ruby-pg]=/usr/lib/ruby/vendor_ruby/pg.rb
	[python3-psycopg]=/usr/lib/python3/dist-packages/psycopg/__init__.py    # test/sticky settings drivers
	[python3-psycopg2]=/usr/lib/python3/dist-packages/psycopg2/__init__.py
)
missing=()
for pkg in $(printf '%s\n' "${!want[@]}" | sort); do
	[[ -e "${want[$pkg]}" ]] || missing+=("$pkg")
done
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
node_pg() { NODE_PATH=/usr/lib/node_modules:/usr/local/lib/node_modules:/usr/share/nodejs node -e "require('pg')" 2>/dev/null; }
need_node_pg=false
if ! command -v node >/dev/null || ! node_pg; then
	need_node_pg=true
fi

if ! command -v go >/dev/null; then
	echo "go not found: install Go 1.26 into /usr/local/go (https://go.dev/dl/) and put /usr/local/go/bin on PATH; Debian's golang package is too old for go.mod" >&2
	exit 1
fi

if ((${#missing[@]} == 0)) && ! $need_node_pg; then
	exit 0
fi

if $check_only || [[ $(id -u) -ne 0 ]]; then
	{
		echo "make test needs packages that are not installed."
		((${#missing[@]} > 0)) && echo "  sudo apt-get install --no-install-recommends ${missing[*]}"
		$need_node_pg && echo "  sudo npm install -g pg@8        # node-postgres, for test/prepared"
		echo "(or run make test as root, which installs them: scripts/deps.sh)"
	} >&2
	exit 1
fi

if ((${#missing[@]} > 0)); then
	log "installing ${missing[*]}"
	# Installed daemons must not start: a pgbouncer on 6432 or a postgres on 5432 would
	# collide with the ports tests use. policy-rc.d is honoured by both invoke-rc.d and
	# deb-systemd-invoke.
	policy=/usr/sbin/policy-rc.d
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
		trap 'rm -f "$policy"' EXIT
	fi
	apt-get update -qq </dev/null
	apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi
# node-postgres from npm: Debian's node-pg conflicts with a NodeSource nodejs where one is
# installed.
if ! node_pg; then
	log "installing node-postgres (npm pg)"
	npm install -g --no-audit --no-fund pg@8 </dev/null
fi
