# pgmux container image: a static binary on distroless (no shell, no package manager).
#
#   docker build -t pgmux .
#   docker run --rm -p 6432:6432 -p 9127:9127 \
#     -e PGMUX_UPSTREAM=postgres://app:app@db:5432/app -e PGMUX_METRICS_ADDR=0.0.0.0:9127 \
#     pgmux --listen 0.0.0.0:6432        # zero-config mode listens on loopback unless told
#   docker run --rm -v $PWD/pgbouncer.ini:/etc/pgbouncer/pgbouncer.ini:ro ... pgmux /etc/pgbouncer/pgbouncer.ini

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not invalidate the module cache layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# --version prints VERSION when given (a release tag), else the module version Go stamps.
ARG VERSION=
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/pgmux ./cmd/pgmux

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pgmux /pgmux
# 65532:65532 is distroless's "nonroot"; numeric so Kubernetes runAsNonRoot can verify it.
USER 65532:65532
# 6432: PostgreSQL clients; 9127: /metrics, /healthz, /readyz (PGMUX_METRICS_ADDR).
EXPOSE 6432 9127
# No curl in the image: pgmux probes itself. Needs PGMUX_METRICS_ADDR=0.0.0.0:9127 (or 127.0.0.1:9127).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/pgmux", "-healthcheck", "http://127.0.0.1:9127/readyz"]
# docker stop sends SIGINT: PgBouncer's (and pgmux's) safe shutdown. New clients are
# refused, transactions in flight finish, each client is closed (FATAL 57P01) when its
# transaction ends, and pgmux exits once every server connection is released. SIGTERM, the
# default, would be the super safe shutdown, which waits for every client to disconnect:
# pooled apps rarely do, so it would sit until docker stop's timeout and SIGKILL. Give
# docker stop time for the longest transaction (--time, compose stop_grace_period).
STOPSIGNAL SIGINT
ENTRYPOINT ["/pgmux"]
