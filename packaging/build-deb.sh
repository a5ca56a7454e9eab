#!/bin/bash
# Build the gatehouse .deb from the working tree, lint it, leave it in packaging/out/.
#
#   packaging/build-deb.sh            # build from the working tree (default)
#   GW_PKG_FROM=HEAD packaging/build-deb.sh   # build from the last commit instead
#
# Env:
#   GW_PKG_FROM=worktree|<git rev>  source to package (default worktree)
#   GW_PKG_CHECK=1                  run the upstream test suite during the build
#                                   (default: DEB_BUILD_OPTIONS=nocheck, CI runs
#                                   the tests in its own stage)
#   GW_PKG_NO_APT=1                 do not install build dependencies
#   GW_PKG_SCRATCH=DIR              scratch directory (default /tmp/gatehouse-pkg.$UID)
# The tree itself is never modified: everything happens in a scratch copy.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
OUT="$HERE/out"
SCRATCH=${GW_PKG_SCRATCH:-/tmp/gatehouse-pkg.$(id -u)}
FROM=${GW_PKG_FROM:-worktree}
APT=(apt-get -o DPkg::Lock::Timeout=600)
t0=$(date +%s)

log() { printf '== build-deb: %s\n' "$*"; }

. "$HERE/need.sh"
gw_need_pkgs build-deb build-essential debhelper devscripts lintian fakeroot rsync git \
	meson ninja-build pkg-config libevent-dev libssl-dev libconfig-dev \
	libmicrohttpd-dev libpcre2-dev libcrypt-dev libjansson-dev zlib1g-dev libhiredis-dev
gw_need_cmds build-deb dpkg-buildpackage:dpkg-dev lintian:lintian rsync:rsync git:git || exit 1

log "scratch copy of the $FROM tree in $SCRATCH/src"
rm -rf "$SCRATCH"
mkdir -p "$SCRATCH/src"
if [ "$FROM" = worktree ]; then
	rsync -a --exclude '/build*' --exclude '/.git' --exclude '/packaging/out' \
		--exclude '/obj-*' --exclude '/debian' "$TOP/" "$SCRATCH/src/"
else
	git -C "$TOP" archive --format=tar "$FROM" | tar -x -C "$SCRATCH/src"
	# the packaging may be newer than the committed tree
	rsync -a --delete --exclude '/out' "$HERE/" "$SCRATCH/src/packaging/"
fi
cp -a "$SCRATCH/src/packaging/debian" "$SCRATCH/src/debian"

# Build-Depends may have grown beyond the list above.
if [ "${GW_PKG_NO_APT:-0}" != 1 ]; then
	(cd "$SCRATCH/src" && dpkg-checkbuilddeps >/dev/null 2>&1) || {
		log "installing Build-Depends from debian/control"
		(cd "$SCRATCH/src" && DEBIAN_FRONTEND=noninteractive "${APT[@]}" build-dep -y -q ./)
	}
fi

if [ "${GW_PKG_CHECK:-0}" != 1 ]; then
	export DEB_BUILD_OPTIONS="nocheck${DEB_BUILD_OPTIONS:+ $DEB_BUILD_OPTIONS}"
fi
log "dpkg-buildpackage (DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-})"
tb=$(date +%s)
(cd "$SCRATCH/src" && dpkg-buildpackage -us -uc -b) > "$SCRATCH/build.log" 2>&1 || {
	tail -60 "$SCRATCH/build.log"; log "FAILED (full log: $SCRATCH/build.log)"; exit 1; }
log "built in $(( $(date +%s) - tb )) s"

mkdir -p "$OUT"
rm -f "$OUT"/gatehouse*_*.deb "$OUT"/gatehouse_*.changes "$OUT"/gatehouse_*.buildinfo
mv "$SCRATCH"/gatehouse*_*.deb "$SCRATCH"/gatehouse_*.changes "$SCRATCH"/gatehouse_*.buildinfo "$OUT/"
cp "$SCRATCH/build.log" "$OUT/build-deb.log"

log "lintian"
tl=$(date +%s)
lintian -I --pedantic --fail-on error,warning "$OUT"/gatehouse_*.changes | tee "$OUT/lintian.log"
log "lintian clean (errors and warnings) in $(( $(date +%s) - tl )) s"

ls -l "$OUT"/*.deb
log "done in $(( $(date +%s) - t0 )) s: $(ls "$OUT"/gatehouse_*_*.deb | grep -v dbgsym)"
