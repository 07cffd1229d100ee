# syntax=docker/dockerfile:1
#
# One image with the three binaries of this project:
#
#   /usr/local/bin/control-plane    xDS control plane        (listens on 18000)
#   /usr/local/bin/greeter-server   example gRPC backend     (listens on 8080)
#   /usr/local/bin/greeter-client   client CLI               (no port)
#
# Build:   docker build -t k8s-grpc-lb:0.1.0 .
# Pick the binary with the container's command: in Kubernetes, `command:` per
# Deployment (see deploy/base/); with Docker, the arguments after the image:
#   docker run --rm -p 8080:8080 k8s-grpc-lb:0.1.0 greeter-server
#   docker run --rm k8s-grpc-lb:0.1.0 control-plane serve --help
# Without arguments the image runs greeter-server.
#
# The image name (k8s-grpc-lb) and tag (the workspace version) are what
# deploy/base/ refers to; the manifest tests (tests/tests/deploy/) check that
# this file, the manifests and the docs agree.

# ---- build: release binaries -------------------------------------------------
# Bookworm here and below: the binaries link the same glibc they run with.
# No protoc needed: the proto crate uses a vendored one.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the target folder between builds; the
# binaries are copied out of the cached target folder in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        --bin control-plane \
        --bin greeter-server \
        --bin greeter-client \
 && mkdir -p /out \
 && cp target/release/control-plane target/release/greeter-server target/release/greeter-client /out/

# ---- runtime: glibc and libgcc, no shell, no package manager -----------------
FROM gcr.io/distroless/cc-debian12 AS runtime
LABEL org.opencontainers.image.title="k8s-grpc-lb" \
      org.opencontainers.image.description="Client-side round-robin load balancing for gRPC on Kubernetes: control-plane, greeter-server, greeter-client" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/control-plane /usr/local/bin/control-plane
COPY --from=build /out/greeter-server /usr/local/bin/greeter-server
COPY --from=build /out/greeter-client /usr/local/bin/greeter-client
# distroless's "nonroot" user, by number so that Kubernetes' runAsNonRoot can
# verify it without reading /etc/passwd.
USER 65532:65532
# greeter-server (h2c), control-plane metrics (HTTP), control-plane (xDS,
# status API, health; h2c).
EXPOSE 8080 9090 18000
ENV PATH=/usr/local/bin:/usr/bin:/bin
CMD ["greeter-server"]
