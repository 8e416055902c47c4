#!/bin/sh
# Builds the KEDA operator (github.com/kedacore/keda/v2, pinned in
# tools/cluster/keda/go.mod) into build/keda/bin/keda-operator, and copies the
# CRDs it serves and its RBAC from the module cache into build/keda/crds and
# build/keda/rbac.  Nothing of
# KEDA's is kept in this repository: the go command fetches it into the module
# cache, checked against go.sum.  Used by `make keda` and `make bench` only;
# `make test` never builds it (a cold build takes many minutes).
#
# A module of its own, so the control-plane build (tools/cluster/build.sh)
# neither waits for KEDA's many scaler SDKs nor has its pins moved by them.
#
# Idempotent: does nothing when the binary and CRDs are newer than go.mod,
# go.sum and this script.  OUT=dir overrides build/keda; FORCE=1 rebuilds.
# The Go build runs under nice(1): the machines have two cores.
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${OUT:-$root/build/keda}
bin=$out/bin/keda-operator
# The CRDs the operator needs for 0->1 activation; the others (ScaledJob,
# CloudEventSource, ...) are installed as well since its controllers watch
# them and would log errors every few seconds without them.
CRDS="keda.sh_scaledobjects.yaml keda.sh_scaledjobs.yaml
keda.sh_triggerauthentications.yaml keda.sh_clustertriggerauthentications.yaml
eventing.keda.sh_cloudeventsources.yaml
eventing.keda.sh_clustercloudeventsources.yaml"
# Its RBAC (ClusterRole and Role keda-operator, their bindings to the
# ServiceAccount keda/keda-operator), applied as shipped.
RBAC="role.yaml role_binding.yaml"

command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null 2>&1 || {
	echo "keda: the go command is missing (Go 1.26 or newer is needed)" >&2
	exit 1
}

fresh=1
[ "${FORCE:-0}" = 1 ] && fresh=0
for f in "$bin" "$out/crds/keda.sh_scaledobjects.yaml" "$out/rbac/role.yaml"; do
	for src in "$here/go.mod" "$here/go.sum" "$here/build.sh"; do
		if [ ! -e "$f" ] || [ "$src" -nt "$f" ]; then
			fresh=0
		fi
	done
done
[ $fresh = 1 ] && exit 0

export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly"
kver=$(sed -n 's/^[[:space:]]*github.com\/kedacore\/keda\/v2 \(v[0-9.]*\).*/\1/p' \
    "$here/go.mod" | head -n 1)
src=$(cd "$here" && go list -m -f '{{.Dir}}' github.com/kedacore/keda/v2)
mkdir -p "$out/bin" "$out/crds" "$out/rbac"
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
start=$(date +%s)
echo "keda: building the KEDA operator $kver into $out/bin"
# KEDA's Makefile stamps version.Version the same way (the operator logs it
# and reports it in its build-info metric).
(cd "$here" && nice -n 10 go build -trimpath \
    -ldflags "-s -w -X github.com/kedacore/keda/v2/version.Version=$kver" \
    -o "$tmp/keda-operator" github.com/kedacore/keda/v2/cmd/operator)
for c in $CRDS; do
	cp "$src/config/crd/bases/$c" "$tmp/$c"
	chmod 644 "$tmp/$c"
	mv -f "$tmp/$c" "$out/crds/$c"
done
for r in $RBAC; do
	cp "$src/config/rbac/$r" "$tmp/$r"
	chmod 644 "$tmp/$r"
	mv -f "$tmp/$r" "$out/rbac/$r"
done
mv -f "$tmp/keda-operator" "$bin"
echo "keda: built in $(($(date +%s) - start)) s"
