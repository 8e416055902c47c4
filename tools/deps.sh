#!/bin/sh
# Installs every Debian package the build, the tests and the demo need, then
# the Python venv of the client tests (build/venv: clients/python with its
# extras, and jsonschema; pinned in tests/clients/requirements.txt).
# Idempotent: does nothing when all are present, and runs apt-get update only
# when a package is missing and the package lists are empty or stale; the
# venv is remade only when the requirements or the package's pyproject change.
# promtool (the /metrics and alert-rule checks) is taken out of Debian's
# prometheus package without installing it (installing would start a
# Prometheus server): `apt-get download` + `dpkg -x`, only usr/bin/promtool,
# into build/tools/promtool.  `tools/deps.sh promtool` does only that part.
set -e
cd "$(dirname "$0")/.."
lists=/var/lib/apt/lists
apt_fresh() {
	if [ -z "$(find $lists -maxdepth 1 -name '*_Packages*' -mtime -1 \
	    2>/dev/null)" ]; then
		apt-get update -q
	fi
}
promtool() {
	[ -x build/tools/promtool ] && return 0
	echo "deps: extracting promtool from Debian's prometheus package"
	apt_fresh
	tmp=$(mktemp -d)
	chmod a+rwx "$tmp"	# apt-get download fetches as _apt
	(cd "$tmp" && apt-get download -q prometheus >/dev/null &&
	    dpkg -x prometheus_*.deb root)
	mkdir -p build/tools
	cp "$tmp/root/usr/bin/promtool" build/tools/promtool.tmp
	mv build/tools/promtool.tmp build/tools/promtool
	rm -rf "$tmp"
}
if [ "${1:-}" = promtool ]; then
	promtool
	exit 0
fi
venv() {
	stamp=build/venv/.stamp
	want=$(cat tests/clients/requirements.txt clients/python/pyproject.toml |
	    sha256sum | cut -d' ' -f1)
	[ -f $stamp ] && [ "$(cat $stamp)" = "$want" ] && return 0
	echo "deps: making build/venv"
	rm -rf build/venv
	python3 -m venv build/venv
	build/venv/bin/pip install -q -r tests/clients/requirements.txt
	build/venv/bin/pip install -q -e "clients/python[all]"
	echo "$want" > $stamp
}
PKGS="build-essential pkg-config libev-dev libhiredis-dev librabbitmq-dev
libcurl4-openssl-dev libssl-dev zlib1g-dev libcjson-dev check libsubunit-dev
libmicrohttpd-dev libyaml-dev redis-server rabbitmq-server openssl python3
chromium fonts-liberation
python3-venv valgrind clang-format curl clang libclang-rt-14-dev"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
	    missing="$missing $p"
done
[ -z "$missing" ] && { venv; promtool; exit 0; }
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing:$missing; run 'make deps' as root" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt_fresh
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
venv
promtool
