# Build stage: compile the release binary (SQLite is bundled, rustls needs no OpenSSL).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --bin understudy

# Runtime stage: a small image with a non-root user.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/understudy --create-home understudy \
    && mkdir -p /etc/understudy
COPY --from=build /src/target/release/understudy /usr/local/bin/understudy
COPY proxy.toml /etc/understudy/proxy.toml
USER understudy
WORKDIR /var/lib/understudy
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/understudy"]
CMD ["serve", "-c", "/etc/understudy/proxy.toml"]
