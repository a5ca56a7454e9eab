#!/bin/sh
# run-long.sh TARGET SECONDS: fuzz one core/http1 target with libFuzzer.
#
# Configures (once) a clang build directory with -Dfuzz=true, runs TARGET for
# SECONDS on a scratch copy of tests/fuzz/corpus/TARGET (so the checked-in
# corpus only grows by deliberate commits), and copies every crash, leak or
# timeout input into tests/fuzz/corpus/TARGET/regress-<name> so the normal test
# run replays it from then on.  Exits 1 if anything was found.
#
# Environment: FUZZ_BUILD_DIR (default /tmp/gatehouse-fuzz), FUZZ_JOBS (parallel
# fuzzing jobs, default 1), FUZZ_ARGS (extra libFuzzer flags).
set -eu

if [ $# -ne 2 ]; then
	echo "usage: $0 TARGET SECONDS   (targets: fuzz_request_head fuzz_response_head fuzz_chunked" >&2
	echo "       fuzz_authority fuzz_dlp fuzz_dlp_body fuzz_domainlist fuzz_policy fuzz_config)" >&2
	exit 2
fi
target=$1
secs=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
# the corpus directory is named after the target, or after it without "fuzz_"
# (as tests/fuzz/meson.build names it)
corpus=$root/tests/fuzz/corpus/$target
[ -d "$corpus" ] || corpus=$root/tests/fuzz/corpus/${target#fuzz_}
build=${FUZZ_BUILD_DIR:-/tmp/gatehouse-fuzz}
jobs=${FUZZ_JOBS:-1}

[ -d "$corpus" ] || { echo "no corpus directory $corpus" >&2; exit 2; }

bin=$build/tests/fuzz/$target
if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" "$root" -Dfuzz=true -Dbuildtype=debugoptimized
fi
if ! meson compile -C "$build" "$target"; then
	# the rest of the tree may not build right now: the target only needs
	# core/http1.c, so build it directly
	echo "meson build failed; compiling $target directly" >&2
	mkdir -p "$build/direct"
	bin=$build/direct/$target
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -I"$root" \
	    "$root/tests/fuzz/$target.c" "$root/core/http1.c" -o "$bin"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/gw-fuzz-$target.XXXXXX")
mkdir "$work/corpus" "$work/artifacts"
cp "$corpus"/* "$work/corpus/"
case $target in
fuzz_dlp) dict=dlp.dict ;;
fuzz_config) dict=conf.dict ;;
fuzz_domainlist | fuzz_policy) dict= ;;
*) dict=http.dict ;;
esac
[ -n "$dict" ] && dict="-dict=$root/tests/fuzz/$dict"

par=
# -jobs makes libFuzzer fork workers that log to ./fuzz-N.log: only when asked
[ "$jobs" -gt 1 ] && par="-jobs=$jobs -workers=$jobs"

export LSAN_OPTIONS=suppressions=$root/tests/lsan.supp:print_suppressions=0
echo "fuzzing $target for ${secs}s in $work"
status=0
# shellcheck disable=SC2086
(cd "$work" && "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" $par $dict ${FUZZ_ARGS:-} \
    "$work/corpus" >"$work/fuzz.log" 2>&1) || status=$?
tail -n 12 "$work/fuzz.log"
[ -z "$par" ] || tail -n 12 "$work"/fuzz-*.log

found=0
for f in "$work"/artifacts/*; do
	[ -f "$f" ] || continue
	name=$(basename "$f")
	cp "$f" "$corpus/regress-$name"
	echo "new regression input: $corpus/regress-$name"
	found=$((found + 1))
done
echo "$target: ${secs}s, exit status $status, $found finding(s); log and grown corpus in $work"
[ "$found" -eq 0 ] && [ "$status" -eq 0 ] || exit 1
