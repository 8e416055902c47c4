#!/bin/sh
# Builds the real Jaeger all-in-one (v2, an OpenTelemetry Collector
# distribution that accepts OTLP/HTTP and answers /api/traces) from the Go
# module pinned in tools/cluster/jaeger/go.mod into build/jaeger/bin, for the
# trace export test (tests/integration/test_traces_jaeger.py, issue 19).  No
# upstream code is kept here: the go command fetches it into the module cache,
# checked against go.sum.
#
# Idempotent: does nothing while the binary is newer than go.mod, go.sum and
# this script.  OUT=dir overrides build/jaeger/bin; FORCE=1 rebuilds.  The
# build runs under nice(1): the machines have two cores.
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${OUT:-$root/build/jaeger/bin}

command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null 2>&1 || {
	echo "jaeger: the go command is missing (Go 1.26 or newer is needed)" >&2
	exit 1
}

if [ "${FORCE:-0}" != 1 ] && [ -x "$out/jaeger" ] &&
    [ "$out/jaeger" -nt "$here/go.mod" ] &&
    [ "$out/jaeger" -nt "$here/go.sum" ] &&
    [ "$out/jaeger" -nt "$here/build.sh" ]; then
	exit 0
fi

mkdir -p "$out"
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly"
start=$(date +%s)
ver=$(sed -n 's/^[[:space:]]*github.com\/jaegertracing\/jaeger \(v[0-9.]*\).*/\1/p' \
    "$here/go.mod" | head -n 1)
echo "jaeger: building jaeger $ver into $out"
(cd "$here" && nice -n 10 go build -trimpath -ldflags "-s -w" \
    -o "$tmp/" tool)
mv -f "$tmp/jaeger" "$out/jaeger"
echo "jaeger: built in $(($(date +%s) - start)) s"
