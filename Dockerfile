# Two stages: build with the Rust toolchain, run on a distroless base as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin support-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/support-operator /usr/local/bin/support-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/support-operator"]
CMD ["run"]
