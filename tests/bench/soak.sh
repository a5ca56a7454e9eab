#!/bin/bash
# Soak test (long mode, not in the normal run): mixed reverse, forward,
# CONNECT and WebSocket traffic at a fixed moderate rate for SOAK_SECS (default 1800 = 30 min)
# with a config reload (SIGHUP) every 10 s.  Samples Gatehouse's RSS and fd
# count every 10 s, and at the end checks:
#   - zero errors from every load tool, and the process is still up;
#   - RSS flat: the last sample <= 1.25 x the sample after warm-up + 4 MiB;
#   - fd count flat: the last sample <= the warm-up sample + 32.
# Prints a summary and exits 0 only if all hold.
#     bash tests/bench/soak.sh            # 30 minutes
#     SOAK_SECS=120 bash tests/bench/soak.sh
# Pinning as in run.sh: Gatehouse on CPU 1, load tools and origin on CPU 0.
set -u
cd "$(dirname "$0")/../.."
SECS=${SOAK_SECS:-1800}
OUT=$(mktemp -d /var/tmp/gatehouse-soak.XXXXXX)
P_ORIGIN=19080 P_SINK=19090 P_REV=19101 P_FWD=19102 P_WS=19085
for t in origin rateload connectload; do
	gcc -O2 -o "$OUT/$t" "tests/bench/$t.c" || exit 1
done
gcc -O2 -pthread -o "$OUT/wsload" tests/bench/wsload.c -lcrypto || exit 1
if [ -z "${GATEHOUSE_BIN:-}" ]; then
	B=$PWD/build-release
	[ -f $B/build.ninja ] || meson setup $B -Dbuildtype=release >/dev/null
	meson compile -C $B gatehouse >/dev/null || exit 1
	GATEHOUSE_BIN=$B/gatehouse
fi
cat >"$OUT/gatehouse.conf" <<CONF
global: { workers = 2; user = ""; state_dir = "$OUT";
  log: { error = "$OUT/error.log"; level = "info"; access = "$OUT/access.log"; };
};
forward: {
  listeners = ( { address = "127.0.0.1:$P_FWD"; } );
  allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ ];
  connect_ports = [ $P_SINK ];
};
reverse: {
  listeners = ( { address = "127.0.0.1:$P_REV"; } );
  upstreams = ( { name = "origin"; servers = ( { address = "127.0.0.1:$P_ORIGIN"; } ); },
                { name = "ws"; servers = ( { address = "127.0.0.1:$P_WS"; } ); } );
  sites = ( { default = true; routes = ( { path = "/"; upstream = "origin"; },
                                         { path = "/ws"; upstream = "ws"; } ); } );
};
CONF
taskset -c 0 "$OUT/origin" $P_ORIGIN $P_SINK &
OPID=$!
taskset -c 0 "$OUT/wsload" -s $P_WS &
WPID=$!
taskset -c 1 "$GATEHOUSE_BIN" -c "$OUT/gatehouse.conf" 2>"$OUT/stderr.log" &
GPID=$!
cleanup() { kill "$OPID" "$WPID" 2>/dev/null; kill "$GPID" 2>/dev/null; wait 2>/dev/null; }
trap cleanup EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$P_REV) 2>/dev/null && break; sleep 0.1; done

L="taskset -c 0"
$L "$OUT/rateload" -p $P_REV -r 400 -c 20 -d "$SECS" -u / >"$OUT/rev.txt" &
R1=$!
$L "$OUT/rateload" -p $P_REV -r 20 -c 4 -d "$SECS" -u /1m >"$OUT/rev1m.txt" &
R2=$!
$L "$OUT/rateload" -p $P_FWD -r 300 -c 20 -d "$SECS" -a -H 127.0.0.1:$P_ORIGIN -u / >"$OUT/fwd.txt" &
R3=$!
# CONNECT: a slow churn of tunnels (setup/close) and one bulk tunnel at a time,
# each run 30 s, repeated; their error counts are summed.
(
	end=$(( $(date +%s) + SECS ))
	while [ "$(date +%s)" -lt "$end" ]; do
		$L "$OUT/connectload" -p $P_FWD -t $P_SINK -m setup -c 1 -d 10 >>"$OUT/csetup.txt"
		$L "$OUT/connectload" -p $P_FWD -t $P_SINK -m bulk -c 1 -d 5 >>"$OUT/cbulk.txt"
		sleep 15
	done
) &
R4=$!
# WebSocket: 4 clients, each upgrading through the reverse side, echoing 20
# frames, closing, and reconnecting after 100 ms.
$L "$OUT/wsload" -p $P_REV -c 4 -d "$SECS" -n 20 -w 100 >"$OUT/ws.txt" &
R5=$!

echo "t_s rss_kb fds" >"$OUT/samples.txt"
start=$(date +%s)
reloads=0
while [ $(( $(date +%s) - start )) -lt "$SECS" ]; do
	sleep 10
	kill -0 $GPID 2>/dev/null || { echo "gatehouse died"; break; }
	kill -HUP $GPID && reloads=$((reloads + 1))
	echo "$(( $(date +%s) - start )) $(awk '/VmRSS/ {print $2}' /proc/$GPID/status) $(ls /proc/$GPID/fd | wc -l)" >>"$OUT/samples.txt"
done
wait $R1 $R2 $R3 $R4 $R5
alive=0; kill -0 $GPID 2>/dev/null && alive=1
sleep 1
last=$(tail -1 "$OUT/samples.txt")
# warm-up sample: the one at 20% of the run (at least the 2nd)
n=$(($(wc -l <"$OUT/samples.txt") - 1))
w=$(( n / 5 )); [ $w -lt 2 ] && w=2
warm=$(sed -n "$((w + 1))p" "$OUT/samples.txt")
errs=0
for f in rev rev1m fwd ws; do
	e=$(grep -o 'err=[0-9]*' "$OUT/$f.txt" | cut -d= -f2); errs=$((errs + ${e:-1}))
done
grep -q 'sessions=[1-9]' "$OUT/ws.txt" || errs=$((errs + 1))   # no WebSocket session at all
for f in csetup cbulk; do
	e=$(grep -o 'err=[0-9]*' "$OUT/$f.txt" | awk -F= '{s+=$2} END {print s+0}'); errs=$((errs + e))
done
read -r _ wrss wfd <<<"$warm"
read -r _ lrss lfd <<<"$last"
rss_ok=$(( lrss <= wrss * 125 / 100 + 4096 ))
fd_ok=$(( lfd <= wfd + 32 ))
crashes=$(grep -ciE 'sanitizer|segfault|abort' "$OUT/stderr.log" "$OUT/error.log" 2>/dev/null | awk -F: '{s+=$2} END {print s+0}')
echo "== soak summary (${SECS}s, $reloads reloads, output in $OUT)"
echo "reverse small: $(cat "$OUT/rev.txt")"
echo "reverse 1MiB:  $(cat "$OUT/rev1m.txt")"
echo "forward small: $(cat "$OUT/fwd.txt")"
echo "WebSocket:     $(cat "$OUT/ws.txt")"
echo "CONNECT setup: $(awk '{for(i=1;i<=NF;i++) if ($i ~ /^(ok|err)=/) {split($i,a,"="); s[a[1]]+=a[2]}} END {print "ok=" s["ok"]+0, "err=" s["err"]+0}' "$OUT/csetup.txt")"
echo "CONNECT bulk:  $(awk '{for(i=1;i<=NF;i++) if ($i ~ /^MBps=/) {split($i,a,"="); s+=a[2]; n++}} END {printf "runs=%d mean_MBps=%.0f\n", n, n ? s/n : 0}' "$OUT/cbulk.txt")"
echo "RSS kB: warm-up $wrss -> end $lrss ($([ $rss_ok = 1 ] && echo flat || echo GROWING))"
echo "fds:    warm-up $wfd -> end $lfd ($([ $fd_ok = 1 ] && echo flat || echo GROWING))"
echo "errors: $errs   alive: $alive   crash markers: $crashes"
if [ "$errs" = 0 ] && [ "$alive" = 1 ] && [ "$rss_ok" = 1 ] && [ "$fd_ok" = 1 ] && [ "$crashes" = 0 ]; then
	echo "SOAK PASS"; exit 0
fi
echo "SOAK FAIL"; exit 1
