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

# The release build is profile-guided (scripts/pgo-build.sh: build
# instrumented, train on 127.0.0.1, build again with the profile). It needs
# llvm-profdata of rustc's LLVM version (Rust 1.95: LLVM 22, Debian's llvm-22
# from bookworm-security; raise both together), curl and openssl.
ARG LLVM_VERSION=22
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl openssl "llvm-${LLVM_VERSION}" \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
COPY scripts/pgo-build.sh ./scripts/
COPY src ./src
# The profile covers the dependencies too, so they are built after the
# training rather than in a layer of their own; the cache mount keeps both
# builds between `docker build`s.
RUN --mount=type=cache,target=/src/target,sharing=locked \
    scripts/pgo-build.sh --out /out/tracehop

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
