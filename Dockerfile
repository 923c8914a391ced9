# syntax=docker/dockerfile:1.7
#
# One build, one small image per service:
#   docker build --build-arg SERVICE=customer-profile -t crm/customer-profile .
#
# Why per-service images from one Dockerfile: the builder stages compile the whole
# workspace once (every binary, identical for every SERVICE value, so BuildKit reuses
# them), and the last stage copies only the one binary. Each image then carries one
# service (smaller, its own CVE surface, its own tag and rollout) while CI pays for
# one compilation.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install --locked cargo-chef@0.1.71
WORKDIR /src

# Dependency recipe: changes only when Cargo.toml/Cargo.lock change.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: cached until the recipe changes.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked --bins \
 && mkdir -p /out \
 && find target/release -maxdepth 1 -type f -executable -exec cp {} /out/ \;

# Picks the one binary (cheap; the only stage that depends on SERVICE). It is installed
# as `service` (the entrypoint) with a link under its own name, for
# `<service> healthcheck` in compose health checks.
FROM builder AS select
ARG SERVICE
RUN test -n "${SERVICE}" && test -x "/out/${SERVICE}" \
 && mkdir -p /image/usr/local/bin \
 && cp "/out/${SERVICE}" /image/usr/local/bin/service \
 && ln -s service "/image/usr/local/bin/${SERVICE}"

# Runtime: glibc + libgcc, no shell, no package manager, uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=select /image/ /
USER 65532:65532
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/service"]
