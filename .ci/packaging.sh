#!/bin/bash
# CI stage: Debian package + appliance image.  About 10-15 minutes on 2 cores
# (mostly mmdebstrap and the TCG boot).  Run as root from anywhere:
#   bash .ci/packaging.sh
# Steps: build-deb.sh (lintian clean) -> check-deb.sh (score, install/upgrade/
# remove/purge) -> appliance/build-image.sh -> appliance/smoke-test.sh.
# Exit status non-zero if any gating check fails.
#
# Env:
#   GW_PKG_EXPECT_CONSOLE=1 (default)  the web-console checks of the smoke test
#       are gating; 0 prints their failures without failing CI.
#   GW_PKG_SKIP_IMAGE=1  stop after the package checks (about 1 minute).
#   GW_PKG_KEEP_IMAGE=1  keep the raw/qcow2 images and the rootfs tree
#       (otherwise the ~2 GB of scratch is removed at the end; the .deb stays).
#       They are always kept when build-image or the smoke test failed, next to
#       the smoke test's serial log (packaging/out/smoke/), for the next look.
# Every step installs the Debian packages it runs (packaging/need.sh), so a
# fresh Debian 12 machine needs nothing but the checkout.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
P=$TOP/packaging
export GW_PKG_EXPECT_CONSOLE=${GW_PKG_EXPECT_CONSOLE:-1}
rc=0
declare -A took
step() {   # name command...
	local name=$1 t=$(date +%s); shift
	echo "=== packaging: $name"
	if "$@"; then echo "=== packaging: $name OK ($(( $(date +%s) - t )) s)"
	else echo "=== packaging: $name FAILED ($(( $(date +%s) - t )) s)"; rc=1; fi
	took[$name]=$(( $(date +%s) - t ))
}
t0=$(date +%s)
step build-deb "$P/build-deb.sh"
if [ -f "$(ls "$P"/out/gatehouse_*_amd64.deb 2>/dev/null | head -1)" ]; then
	step check-deb "$P/check-deb.sh"
	if [ "${GW_PKG_SKIP_IMAGE:-0}" != 1 ]; then
		step build-image "$P/appliance/build-image.sh"
		if [ -f "$P/out/gatehouse-appliance.qcow2" ]; then
			step smoke-test timeout 900 "$P/appliance/smoke-test.sh"
		fi
		if [ "${GW_PKG_KEEP_IMAGE:-0}" = 1 ] || [ $rc != 0 ]; then
			echo "=== packaging: kept for the next look:"
			ls -d "$P/out/image-work/rootfs" "$P/out/gatehouse-appliance.img" "$P/out/gatehouse-appliance.qcow2" \
				"$P/out/smoke/serial.log" "$P/out/smoke/serial.txt" "$P/out/smoke/qemu.log" 2>/dev/null | sed 's/^/    /'
		else
			rm -rf "$P/out/image-work" "$P/out/gatehouse-appliance.img" "$P/out/gatehouse-appliance.qcow2"
		fi
	fi
fi
for k in build-deb check-deb build-image smoke-test; do
	[ -n "${took[$k]:-}" ] && printf '    %-12s %4s s\n' "$k" "${took[$k]}"
done
echo "=== packaging: total $(( $(date +%s) - t0 )) s, $([ $rc = 0 ] && echo OK || echo FAILED)"
exit $rc
