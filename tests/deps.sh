#!/bin/bash
# Install what Gatehouse needs on Debian 12, only when something is missing.
#   tests/deps.sh build   libraries and tools to build the daemon
#   tests/deps.sh test    also what the test suite uses
set -eu
BUILD="gcc meson ninja-build pkg-config libevent-dev libssl-dev libconfig-dev libmicrohttpd-dev
       libpcre2-dev libcrypt-dev libjansson-dev zlib1g-dev libkrb5-dev
       libldap-dev libnghttp2-dev libhiredis-dev"
TEST="python3 python3-pytest curl openssl procps iproute2 clang libclang-rt-14-dev
      python3-prometheus-client chromium nodejs c-icap libc-icap-mod-virus-scan clamav-daemon clamav
      krb5-kdc krb5-admin-server krb5-user slapd ldap-utils faketime nghttp2-client python3-h2 python3-grpcio
      redis-server redis-tools keepalived sslscan pebble"
want="$BUILD"
[ "${1:-build}" = test ] && want="$BUILD $TEST"
missing=""
for p in $want; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing="$missing $p"
done
# npm: Debian's package, unless a node that brings its own npm is installed
[ "${1:-build}" = test ] && ! command -v npm >/dev/null 2>&1 && missing="$missing npm"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
if [ -n "$missing" ]; then
	echo "deps: installing$missing" >&2
	$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
		--no-install-recommends $missing >/dev/null
fi
# the console's browser test: playwright-core from npm (it drives Debian's
# /usr/bin/chromium; no browser is downloaded)
if [ "${1:-build}" = test ] && [ ! -d "$(dirname "$0")/browser/node_modules/playwright-core" ]; then
	echo "deps: npm ci in tests/browser" >&2
	(cd "$(dirname "$0")/browser" && npm ci --no-audit --no-fund >/dev/null)
fi
exit 0
