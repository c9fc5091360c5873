# pgmux developer and CI entry points. CI runs .ci/run, which runs `make test`.
# `make test` first runs scripts/deps.sh: as root it installs what the tests need (PostgreSQL 15,
# PgBouncer, gcc, the drivers test/prepared runs); otherwise it names what is missing and stops.
# It sets PGMUX_REQUIRE_ALL=1, so a test that would skip for a missing tool fails instead.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

GO ?= go
# Fuzz budget per target in `make test`: a count of inputs (a time budget makes Go's fuzzer time out
# on a busy machine); raise it for a longer local run: make fuzz FUZZTIME=1m, or bench/fuzz.sh
FUZZTIME ?= 5000x

.PHONY: build deps test vet lint unit fuzz demo bench

# staticcheck, pinned; `go run` fetches it through the Go module proxy on first use.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

# The Dockerfile's build: a static binary (no cgo; see README "Running it"). -buildvcs: --version
# names the commit even where GOFLAGS turns stamping off. cmd/pgmux TestBuildsMatchTheImage keeps
# this, the Dockerfile, the README and bench/lib.sh's build_pgmux in step.
build:
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -trimpath -ldflags "-s -w" -o bin/pgmux ./cmd/pgmux

deps:
	./scripts/deps.sh

test: export PGMUX_REQUIRE_ALL := 1
test: deps
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	# The bench tools are their own module (bench/go.mod): plotting stays out of pgmux's go.mod.
	cd bench && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 10m ./...
	# Without -race too: race builds use the ordinary read/write calls (protocol/wire/rawio_*.go)
	$(GO) test -count=1 -timeout 10m ./protocol/wire ./proxy ./test/e2e ./test/faults
	# client_loop = 0 (a goroutine per client, as where the loops cannot carry a client)
	# under the race detector: the harnesses turn it off for every pgmux they start.
	PGMUX_CLIENT_LOOP=0 $(GO) test -race -count=1 -timeout 10m ./proxy ./test/e2e ./test/faults
	@$(MAKE) --no-print-directory fuzz

vet:
	$(GO) vet ./...

lint: vet
	$(GO) run $(STATICCHECK) ./...

# Integration tests start their own PostgreSQL (internal/pgtest); with CI or PGMUX_REQUIRE_ALL set they
# fail, not skip, without one.
unit:
	$(GO) test -race -count=1 -timeout 20m ./...

# A short pass over every native fuzz target, found by grep so new targets join automatically.
fuzz:
	@targets=$$(grep -rHoE --include='*_test.go' --exclude-dir=.git --exclude-dir=vendor --exclude-dir=testdata \
		'^func Fuzz[A-Za-z0-9_]+\([^)]*\*testing\.F\)' . \
		| sed -E 's#^(.*)/[^/]+:func (Fuzz[A-Za-z0-9_]+).*#\1 \2#' | sort -u || true); \
	if [[ -z "$$targets" ]]; then echo "fuzz: no Fuzz targets found"; exit 0; fi; \
	while read -r dir name; do \
		echo "fuzz: $$name in $$dir for $(FUZZTIME)"; \
		if ! $(GO) test -run='^$$' -fuzz="^$${name}\$$" -fuzztime=$(FUZZTIME) -parallel=1 "$$dir"; then \
			if [[ -n "$$(git status --porcelain -- "$$dir/testdata/fuzz/$$name" 2>/dev/null)" ]]; then exit 1; fi; \
			echo "fuzz: $$name stopped without a failing input (the fuzzer timed out on a busy machine): once more"; \
			$(GO) test -run='^$$' -fuzz="^$${name}\$$" -fuzztime=$(FUZZTIME) -parallel=1 "$$dir"; \
		fi; \
	done <<< "$$targets"

demo:
	./bench/demo.sh

bench:
	./bench/run.sh
