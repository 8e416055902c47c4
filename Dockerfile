# The agentscaler image the Helm chart runs (charts/agentscaler).
#
#   docker build -t agentscaler/agentscaler:0.1.0 --build-arg VERSION=$(git describe --always) .
#
# Build stage: Debian 12 with the -dev packages of tools/deps.sh that the
# daemon links, then `make` of the release binary.  Runtime stage:
# debian:12-slim with only the shared libraries the binary needs (kept in
# step with `ldd` by tests/chart/test_dockerfile.py), CA certificates for
# the API server and HTTPS brokers, and a numeric non-root user, so that the
# chart's runAsNonRoot can be checked by the kubelet.

FROM debian:12 AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       build-essential pkg-config \
       libev-dev libhiredis-dev librabbitmq-dev libcurl4-openssl-dev libcjson-dev \
       libmicrohttpd-dev libssl-dev libyaml-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY include include
COPY scheduler scheduler
COPY scalers scalers
COPY k8s k8s
# No .git in the build context: the version comes in as an argument.
ARG VERSION=unknown
RUN make build/release/agentscaler VERSION=$VERSION \
    && strip build/release/agentscaler \
    && build/release/agentscaler --version

FROM debian:12-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       ca-certificates \
       libcjson1 libcurl4 libev4 libhiredis0.14 libmicrohttpd12 librabbitmq4 \
       libssl3 libyaml-0-2 zlib1g \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/release/agentscaler /usr/local/bin/agentscaler
# Numeric, so that runAsNonRoot is verifiable without /etc/passwd; the same
# id as the chart's podSecurityContext.  The daemon writes nothing but /tmp
# (an emptyDir in the chart, the root filesystem is read-only).
USER 10001:10001
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/agentscaler"]
CMD ["--metrics-addr=0.0.0.0:9090"]
