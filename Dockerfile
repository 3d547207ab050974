# squall's container image: squall and squall-relay, built with cargo and run
# on a small runtime image as a non-root user. `squall k8s` renders manifests
# that run it (the entrypoint is squall: a pod's args are a squall command).
#
#   docker build -t squall:0.1.0 .
#   docker run --rm squall:0.1.0 validate /scenario.toml
#
# The build stage's cargo command is the one `.ci/run` and the tests run
# (tests/past_one_machine.rs runs it outside Docker and parses this file).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin squall --bin squall-relay

# Debian 12's glibc and libgcc, nothing else: no shell, no package manager.
# squall needs nothing more (the builtin relay is squall itself).
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /src/target/release/squall /src/target/release/squall-relay /usr/local/bin/
# The uid the Kubernetes manifests run as (runAsUser 10001), never root.
USER 10001:10001
WORKDIR /tmp
# squall run --metrics-addr 0.0.0.0:9464 --metrics-allow-remote
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/squall"]
CMD ["--help"]
