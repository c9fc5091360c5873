# pgmux container image: a static binary on distroless (no shell, no package manager).
#
#   docker build -t pgmux .
#   docker run --rm -p 6432:6432 -p 9127:9127 \
#     -e PGMUX_UPSTREAM=postgres://app:app@db:5432/app -e PGMUX_LISTEN=0.0.0.0:6432 \
#     -e PGMUX_METRICS_ADDR=0.0.0.0:9127 pgmux
#   docker run --rm -v $PWD/pgbouncer.ini:/etc/pgbouncer/pgbouncer.ini:ro ... pgmux /etc/pgbouncer/pgbouncer.ini

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not invalidate the module cache layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
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
ENTRYPOINT ["/pgmux"]
