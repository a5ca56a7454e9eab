#!/bin/bash
# Install what Gatehouse needs on Debian 12, only when something is missing.
#   tests/deps.sh build   libraries and tools to build the daemon
#   tests/deps.sh test    also what the test suite uses
set -eu
BUILD="gcc meson ninja-build pkg-config libevent-dev libssl-dev libconfig-dev libmicrohttpd-dev
       libpcre2-dev libcrypt-dev"
TEST="python3 python3-pytest curl openssl procps iproute2 clang libclang-rt-14-dev"
want="$BUILD"
[ "${1:-build}" = test ] && want="$BUILD $TEST"
missing=""
for p in $want; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
	--no-install-recommends $missing >/dev/null
