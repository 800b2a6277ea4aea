# A small image for `keelson run`: a static (musl) binary on an empty base, run as a non-root
# user. Build: docker build -t keelson:0.1.0 .
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/*
RUN rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# AWS-LC build settings (entropy from getrandom): see docs/dependencies.md.
COPY .cargo ./.cargo
COPY src ./src
COPY crates ./crates
COPY benches ./benches
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin keelson \
 && strip target/x86_64-unknown-linux-musl/release/keelson

FROM scratch
# CA roots for HTTPS registries; /etc/passwd names the non-root user.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/keelson /keelson
USER 65532:65532
EXPOSE 9300
ENTRYPOINT ["/keelson"]
CMD ["run"]
