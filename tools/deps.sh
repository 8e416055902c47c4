#!/bin/sh
# Installs every Debian package the build, the tests and the demo need.
# Idempotent: does nothing when all are present, and runs apt-get update only
# when a package is missing and the package lists are empty or stale.
set -e
PKGS="build-essential pkg-config libev-dev libhiredis-dev librabbitmq-dev
libcurl4-openssl-dev libssl-dev libcjson-dev check libsubunit-dev
libmicrohttpd-dev libyaml-dev redis-server rabbitmq-server openssl python3
valgrind clang-format curl clang libclang-rt-14-dev"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
	    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing:$missing; run 'make deps' as root" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
lists=/var/lib/apt/lists
if [ -z "$(find $lists -maxdepth 1 -name '*_Packages*' -mtime -1 2>/dev/null)" ]; then
	apt-get update -q
fi
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
