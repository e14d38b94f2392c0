# syntax=docker/dockerfile:1
#
# peerconf: a static binary in an otherwise empty image.
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/peerconf/peerconf:0.1.0 .
#
# The build stage runs on the build machine's own platform and cross-compiles for TARGETARCH:
# peerconf is pure Rust (no C code in its dependencies), so rust-lld and the musl target's
# bundled C runtime link it for any architecture without a cross C toolchain or emulation.
# No Docker engine runs in CI: ci/dockerfile_build.py runs this build stage's steps verbatim on
# the CI machine (which is why they only use paths under WORKDIR), and ci/image.sh proves what
# FROM scratch implies for the binary it yields (static, <= 3.5 MiB, renders as uid 65532 from
# an empty root).

ARG RUST_VERSION=1.95

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-slim-bookworm AS build
ARG TARGETARCH
WORKDIR /src

# Docker's architecture name -> Rust's static (musl) target.
RUN case "${TARGETARCH}" in \
        amd64) echo x86_64-unknown-linux-musl ;; \
        arm64) echo aarch64-unknown-linux-musl ;; \
        *) echo "unsupported TARGETARCH '${TARGETARCH}': use amd64 or arm64" >&2; exit 1 ;; \
    esac > .rust-target \
    && rustup target add "$(cat .rust-target)"
ENV CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld

# Dependency layer: built from the manifests alone, so a source change does not recompile them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --target "$(cat .rust-target)" \
    && rm -rf src

COPY src ./src
# COPY keeps the sources' old mtimes: touch them, or cargo keeps the placeholder build.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --target "$(cat .rust-target)" \
    && cp "target/$(cat .rust-target)/release/peerconf" peerconf

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="peerconf" \
      org.opencontainers.image.description="Init container that renders a StatefulSet member's config from a ConfigMap template once its peers' DNS names resolve" \
      org.opencontainers.image.source="https://github.com/peerconf/peerconf" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /src/peerconf /peerconf
# Numeric, so no /etc/passwd is needed; matches runAsUser 65532 in the manifests.
USER 65532:65532
ENTRYPOINT ["/peerconf"]
CMD ["--help"]
