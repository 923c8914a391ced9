# syntax=docker/dockerfile:1.7
#
# One Dockerfile, one small image per service:
#
#   docker build --build-arg SERVICE=customer-profile -t crm/customer-profile:dev .
#
# Why per-service images (and not one image holding every binary): each service is
# tagged, scanned, promoted and rolled back on its own (the chart pins a tag per
# service if needed), an image carries only the code it runs, and a CVE or a bad build
# of one service never forces a redeploy of the others. The cost an all-in-one image
# would save — compiling once — is kept anyway: every stage before `select` is the
# same for every SERVICE value, so BuildKit compiles the workspace once and the later
# images of a CI run only copy a different binary out of the cached stage.
#
# Layer caching: cargo-chef turns Cargo.toml/Cargo.lock into a recipe, and the
# dependencies are compiled from that recipe alone, so a change to our own code
# rebuilds only the workspace crates. The crate registry is a BuildKit cache mount.
# No protoc is needed (contracts are compiled by a pure-Rust compiler).
#
# Runtime: distroless cc (glibc, libgcc, CA certificates, tzdata; no shell, no
# package manager), uid/gid 65532. The builder is Debian 12 (bookworm) because the
# runtime is: the binary must not need a newer glibc than the runtime has.
#
# Commands: `<service>` serves gRPC on 50051 (the entrypoint), `<service> migrate`
# applies migrations and exits, `<service> healthcheck` exits 0 when the local server
# is SERVING. The binary is /usr/local/bin/service with a link under its own name,
# so `docker run IMAGE migrate` and `CMD ["customer-profile", "healthcheck"]` both work.

ARG RUST_VERSION=1.95
ARG CARGO_CHEF_VERSION=0.1.77

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install --locked "cargo-chef@${CARGO_CHEF_VERSION}"
WORKDIR /src

# The dependency recipe: its content changes only when manifests or the lock file do.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer is reused until the recipe changes.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo chef cook --release --locked --recipe-path recipe.json
# The workspace: every service binary in one compilation, identical for all SERVICEs.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked --bins \
 && mkdir -p /out \
 && find target/release -maxdepth 1 -type f -executable -exec cp {} /out/ \;

# The only stage that depends on SERVICE (cheap: one copy).
FROM builder AS select
ARG SERVICE
RUN if [ -z "${SERVICE}" ]; then echo "build with --build-arg SERVICE=<folder in services/>" >&2; exit 1; fi \
 && if [ ! -x "/out/${SERVICE}" ]; then echo "no binary named ${SERVICE}; have: $(ls /out)" >&2; exit 1; fi \
 && mkdir -p /image/usr/local/bin \
 && cp "/out/${SERVICE}" /image/usr/local/bin/service \
 && ln -s service "/image/usr/local/bin/${SERVICE}"

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG SERVICE
LABEL org.opencontainers.image.title="crm-${SERVICE}" \
      org.opencontainers.image.description="CRM platform service ${SERVICE} (gRPC on 50051)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=select /image/ /
USER 65532:65532
EXPOSE 50051
STOPSIGNAL SIGTERM
# For `docker run`; Kubernetes uses the chart's native gRPC probes instead.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/service", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/service"]
