# syntax=docker/dockerfile:1
# tracehop container image: one static-ish binary on a distroless runtime.
#
#   docker build -t ghcr.io/tracehop/tracehop:0.1.0 .
#
# The same image runs the sidecar (`run`), the embedded collector
# (`collector`) and the demo services (`demo-app NAME`).

ARG RUST_VERSION=1.95

# --- build ------------------------------------------------------------------
# Debian 12 (bookworm), like the runtime image, so the binary links against
# the same glibc.
FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src

# Dependencies first, in their own layer: with a placeholder main.rs and
# lib.rs this layer is rebuilt only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/.fingerprint/tracehop-*

# The real source. Removing the placeholder's fingerprints above makes cargo
# rebuild the crate even when COPY keeps old modification times.
COPY src ./src
RUN cargo build --release --locked \
    && install -D -m 0755 target/release/tracehop /out/tracehop

# --- runtime ----------------------------------------------------------------
# glibc, libgcc and CA certificates; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="tracehop" \
      org.opencontainers.image.description="A sidecar HTTP proxy that adds distributed tracing (W3C, B3, Zipkin) to services that have none" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/tracehop/tracehop" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

COPY --from=build /out/tracehop /usr/local/bin/tracehop

# 65532 is distroless's "nonroot"; numeric so Kubernetes' runAsNonRoot can
# check it.
USER 65532:65532

# 15006 inbound listener, 15000 admin (/metrics /healthz /readyz),
# 9411 embedded collector (`tracehop collector`).
EXPOSE 15006 15000 9411

ENTRYPOINT ["/usr/local/bin/tracehop"]
CMD ["run", "--config", "/etc/tracehop/config.yaml"]
