#!/bin/bash
# Gatehouse benchmarks against nginx, HAProxy (reverse), nginx proxy_cache and
# Varnish (reverse cache hits) and Squid, tinyproxy (forward).  One command, as root, from anywhere:
#     bash tests/bench/run.sh            # everything, ~15-20 minutes
#     BENCH_ONLY=rev_ka_c50,profile bash tests/bench/run.sh
# Environment: GATEHOUSE_BIN (skip the build), BENCH_ROUNDS (3), BENCH_SECS (5),
# BENCH_ONLY (scenario names, see bench.py), BENCH_OUT (output dir),
# BENCH_SKIP_MICRO=1 (skip listbench/dlpbench).
# CPU pinning (2-core machine): every proxy on CPU 1, wrk/the load tools and
# the origin on CPU 0 (taskset).  See tests/bench/README.md.
set -eu
cd "$(dirname "$0")/../.."
ROOT=$PWD
need=""
command -v nginx >/dev/null || need="$need nginx-light"
command -v haproxy >/dev/null || need="$need haproxy"
command -v squid >/dev/null || need="$need squid"
command -v tinyproxy >/dev/null || need="$need tinyproxy"
command -v varnishd >/dev/null || need="$need varnish"
command -v wrk >/dev/null || need="$need wrk"
command -v h2load >/dev/null || need="$need nghttp2-client"
command -v perf >/dev/null || need="$need linux-perf"
if [ -n "$need" ]; then
	echo "installing:$need" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >/dev/null ||
		{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >/dev/null; }
fi
# Debian starts the packaged daemons on install (where allowed): stop them,
# the bench starts its own on its own ports.
for s in nginx haproxy squid tinyproxy varnish; do
	systemctl stop "$s" 2>/dev/null || true
done

if [ -z "${GATEHOUSE_BIN:-}" ]; then
	B=$ROOT/build-release
	[ -f $B/build.ninja ] || meson setup $B -Dbuildtype=release >/dev/null
	meson compile -C $B gatehouse >/dev/null
	export GATEHOUSE_BIN=$B/gatehouse
fi
export BENCH_OUT=${BENCH_OUT:-$(mktemp -d /var/tmp/gatehouse-bench.XXXXXX)}
ulimit -n "$(ulimit -Hn)"

echo "# machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), kernel $(uname -r), $(date -u +%F)"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 tests/bench/bench.py
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ "${BENCH_SKIP_MICRO:-0}" != 1 ] && [ -z "${BENCH_ONLY:-}" ]; then
	echo
	echo "## listbench (5M domains; forward/domainset)"
	if gcc -std=c11 -D_GNU_SOURCE -O2 -I. tests/bench/listbench.c forward/domainset.c -lpthread \
		-o "$BENCH_OUT/listbench" 2>"$BENCH_OUT/listbench-build.log"; then
		timeout 600 "$BENCH_OUT/listbench" -f "$BENCH_OUT/domains.txt" 2>&1 | tail -20
		rm -f "$BENCH_OUT/domains.txt"
	else
		echo "listbench did not build (tree mid-edit?):"; tail -5 "$BENCH_OUT/listbench-build.log"
	fi
	echo
	echo "## dlpbench (forward/dlp, 64 MiB of clean text/JSON)"
	if gcc -std=c11 -D_GNU_SOURCE -O2 -I. tests/bench/dlpbench.c forward/dlp.c -lpcre2-8 \
		-o "$BENCH_OUT/dlpbench" 2>"$BENCH_OUT/dlpbench-build.log"; then
		timeout 600 "$BENCH_OUT/dlpbench" 2>&1 | tail -20
	else
		echo "dlpbench did not build (tree mid-edit?):"; tail -5 "$BENCH_OUT/dlpbench-build.log"
	fi
fi
echo "# raw results: $BENCH_OUT/results.json; perf reports: $BENCH_OUT/perf-*.txt"
