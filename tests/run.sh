#!/bin/bash
# The whole test suite: unit tests (with fuzz-corpus replays) and integration
# tests, first on a normal build, then again on an ASan+UBSan build.  Installs
# its dependencies, builds, and ends with the line "N passed, N failed".
#   GW_QUICK=1 tests/run.sh   skip the sanitizer pass
set -u
cd "$(dirname "$0")/.."
bash tests/deps.sh test || { echo "0 passed, 1 failed"; exit 1; }

PASS=0
FAIL=0
LOGDIR=$(mktemp -d /tmp/gatehouse-tests.XXXXXX)

note() { printf '== %s\n' "$*" >&2; }

build() {   # build DIR [meson options...]
	local dir=$1; shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >"$LOGDIR/setup-$(basename "$dir").log" 2>&1 ||
			{ cat "$LOGDIR/setup-$(basename "$dir").log" >&2; return 1; }
	fi
	meson compile -C "$dir" >"$LOGDIR/build-$(basename "$dir").log" 2>&1 ||
		{ tail -50 "$LOGDIR/build-$(basename "$dir").log" >&2; return 1; }
}

unit() {    # unit DIR LABEL
	local dir=$1 label=$2 name log rc line p f
	for name in $(meson test -C "$dir" --no-rebuild --list 2>/dev/null | grep " / " | sed 's/^.* \/ //'); do
		log="$LOGDIR/unit-$label-$name.log"
		meson test -C "$dir" -v --no-rebuild "$name" >"$log" 2>&1
		rc=$?
		line=$(grep -Eo 'RESULT: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
		if [ -n "$line" ]; then
			p=$(echo "$line" | awk '{print $2}')
			f=$(echo "$line" | awk '{print $4}')
			[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
		elif [ "$rc" -eq 0 ]; then
			p=1 f=0
		else
			p=0 f=1
		fi
		PASS=$((PASS + p))
		FAIL=$((FAIL + f))
		if [ "$f" -ne 0 ]; then
			note "$label unit $name: FAILED ($f)"
			tail -40 "$log" >&2
		else
			note "$label unit $name: $p passed"
		fi
	done
}

run_integration() {   # run_integration DIR LABEL SLICE: pytest into $LOGDIR/integration-LABEL.log
	local dir=$1 label=$2 slice=$3
	GW_PORT_SLICE=$slice GATEHOUSE_BIN="$PWD/$dir/gatehouse" timeout 2400 /usr/bin/python3 -m pytest -q \
		-p no:cacheprovider --durations=15 tests/integration >"$LOGDIR/integration-$label.log" 2>&1
}

count_integration() {   # count_integration LABEL: add that pass's result to the totals
	local label=$1 log="$LOGDIR/integration-$1.log" line p f e
	line=$(grep -E '^[=]* *[0-9]+ (passed|failed|errors?)' "$log" | tail -1)
	p=$(echo "$line" | grep -Eo '[0-9]+ passed' | awk '{print $1}')
	f=$(echo "$line" | grep -Eo '[0-9]+ failed' | awk '{print $1}')
	e=$(echo "$line" | grep -Eo '[0-9]+ errors?' | awk '{print $1}')
	p=${p:-0} f=${f:-0} e=${e:-0}
	[ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$e" -eq 0 ] && f=1
	PASS=$((PASS + p))
	FAIL=$((FAIL + f + e))
	note "$label integration: $line"
	if [ $((f + e)) -ne 0 ]; then
		grep -E '^(FAILED|ERROR) ' "$log" >&2
		tail -80 "$log" >&2
	fi
}

sanitizer_env() {
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1
	export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
	export GW_SANITIZED=1
}

# Both builds and their unit tests first; then the two integration passes run
# side by side (most of a pass is waiting on sockets, peers and timeouts, not
# CPU), each picking its loopback ports from its own half of the range.
note "normal build"
plain=0
if build build; then
	unit build plain
	plain=1
else
	FAIL=$((FAIL + 1))
fi

asan=0
if [ "${GW_QUICK:-0}" != 1 ]; then
	note "ASan+UBSan build"
	if build build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug; then
		(sanitizer_env; unit build-asan asan; echo "$PASS $FAIL" >"$LOGDIR/asan-unit.count")
		read -r PASS FAIL <"$LOGDIR/asan-unit.count"
		asan=1
	else
		FAIL=$((FAIL + 1))
	fi
fi

note "integration tests ($([ $asan = 1 ] && echo 'normal and ASan+UBSan builds side by side' || echo 'normal build'))"
pids=()
[ $plain = 1 ] && { run_integration build plain 0/2 & pids+=($!); }
[ $asan = 1 ] && { (sanitizer_env; run_integration build-asan asan 1/2) & pids+=($!); }
for pid in "${pids[@]}"; do wait "$pid"; done
[ $plain = 1 ] && count_integration plain
[ $asan = 1 ] && count_integration asan

note "logs in $LOGDIR"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
