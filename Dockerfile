# Build stage: compile the binary to deploy (`--profile dist`: release with
# whole-program LTO; SQLite is bundled, rustls needs no OpenSSL).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
# The workspace's other members (Cargo reads their manifests).
COPY crates ./crates
COPY scripts/loadbench ./scripts/loadbench
RUN cargo build --profile dist --locked --bin understudy

# Runtime stage: a small image with a non-root user.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/understudy --create-home understudy \
    && mkdir -p /etc/understudy
COPY --from=build /src/target/dist/understudy /usr/local/bin/understudy
# Listeners on 0.0.0.0 (the repository's proxy.toml keeps them on loopback).
COPY examples/container/proxy.toml /etc/understudy/proxy.toml
USER 10001
WORKDIR /var/lib/understudy
EXPOSE 8080 9090
# Healthy while the admin listener answers (exit 1 when it does not).
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["/usr/local/bin/understudy", "status", "--admin", "127.0.0.1:9090"]
ENTRYPOINT ["/usr/local/bin/understudy"]
CMD ["serve", "-c", "/etc/understudy/proxy.toml"]
