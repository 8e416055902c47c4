#!/bin/sh
# Builds the real control plane of tools/cluster into build/cluster/bin from
# the Go modules pinned in tools/cluster/go.mod and tools/cluster/helm/go.mod
# (no upstream code is kept in this repository: the go command fetches it
# into the module cache, checked against go.sum).
#
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok,
#   agent-sandbox-controller, sandbox-router   (tools/cluster/go.mod)
#   helm                                        (tools/cluster/helm/go.mod)
#
# Idempotent: does nothing when every binary is newer than the go.mod and
# go.sum files and this script.  OUT=dir overrides build/cluster/bin;
# FORCE=1 rebuilds.  Go builds run under nice(1): the machines have two cores.
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${OUT:-$root/build/cluster/bin}
BINS="etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok
agent-sandbox-controller sandbox-router helm"

# The polyglot machines install Go in /usr/local/go; a shell started
# without a login profile may not have it on PATH.
command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null 2>&1 || {
	echo "cluster: the go command is missing (Go 1.26 or newer is needed)" >&2
	exit 1
}

fresh=1
if [ "${FORCE:-0}" = 1 ]; then
	fresh=0
fi
for b in $BINS; do
	for src in "$here/go.mod" "$here/go.sum" "$here/helm/go.mod" \
	    "$here/helm/go.sum" "$here/build.sh"; do
		if [ ! -x "$out/$b" ] || [ "$src" -nt "$out/$b" ]; then
			fresh=0
		fi
	done
done
if [ $fresh = 1 ]; then
	exit 0
fi

mkdir -p "$out"
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# The Kubernetes binaries report the release they were built from (kubectl,
# Helm and the controllers read /version); a module build has no git tree to
# take it from, so it is stamped here from go.mod.
kver=$(sed -n 's/^[[:space:]]*k8s.io\/kubernetes \(v[0-9.]*\).*/\1/p' \
    "$here/go.mod" | head -n 1)
kmaj=$(echo "$kver" | sed 's/^v\([0-9]*\)\..*/\1/')
kmin=$(echo "$kver" | sed 's/^v[0-9]*\.\([0-9]*\)\..*/\1/')
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$kver -X $vpkg.gitMajor=$kmaj"
ldflags="$ldflags -X $vpkg.gitMinor=$kmin -X $vpkg.gitTreeState=clean"

export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly"
start=$(date +%s)
echo "cluster: building the control plane (Kubernetes $kver) into $out"
# `go build tool` builds every tool directive of the module at once; the
# binaries are named after their package's last path element.
(cd "$here" && nice -n 10 go build -trimpath -ldflags "$ldflags" \
    -o "$tmp/" tool)
mv "$tmp/server" "$tmp/etcd"
mv "$tmp/cmd" "$tmp/sandbox-router"
hver=$(sed -n 's/^[[:space:]]*helm.sh\/helm\/v4 \(v[0-9.]*\).*/\1/p' \
    "$here/helm/go.mod" | head -n 1)
(cd "$here/helm" && nice -n 10 go build -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$hver" \
    -o "$tmp/" tool)
for b in $BINS; do
	mv -f "$tmp/$b" "$out/$b"
done
echo "cluster: built $(echo $BINS | wc -w) binaries in $(($(date +%s) - start)) s"
