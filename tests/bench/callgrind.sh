#!/bin/bash
# Instructions per proxied request (user space), noise-free: runs Gatehouse,
# nginx and HAProxy under valgrind --tool=callgrind, sends a fixed number of
# small keep-alive requests (rateload: 500 req/s x 8 s over 10 connections),
# and prints self Ir per request and each proxy's top functions (cgself.py).
#     bash tests/bench/callgrind.sh        (after run.sh has installed the peers)
#     CG_CACHE=1 bash tests/bench/callgrind.sh   cache hits instead: Gatehouse's
#         reverse.cache vs nginx proxy_cache on tmpfs (nginx-cache.conf)
#     GATEHOUSE_BIN_B=/other/gatehouse bash tests/bench/callgrind.sh   A/B of two
#         builds: both on the reverse door, then both on the forward door
#         (absolute-form GETs to the origin), then nginx and HAProxy
# Output dir: $CG_OUT (default a new /tmp/gh-callgrind.*).
set -u
cd "$(dirname "$0")/../.."
OUT=${CG_OUT:-$(mktemp -d /var/tmp/gatehouse-callgrind.XXXXXX)}
mkdir -p "$OUT"
chmod 777 "$OUT"
GH=${GATEHOUSE_BIN:-$(cd "$(dirname "$0")/../.." && pwd)/build-release/gatehouse}
P_ORIGIN=18680 P_GH=18681 P_FWD=18682 P_NGINX=18683 P_HAP=18684
GH_CACHE="" ROUTE_CACHE="" NGINX_CONF=tests/bench/nginx.conf NGINX_CACHE=/dev/shm/gatehouse-cg-$$
if [ "${CG_CACHE:-0}" = 1 ]; then
	GH_CACHE='cache = { memory = "256M"; max_object = "1M"; };'
	ROUTE_CACHE=' cache = { ttl = 3600.0; };'
	NGINX_CONF=tests/bench/nginx-cache.conf
fi
for t in origin rateload; do gcc -O2 -o "$OUT/$t" "tests/bench/$t.c" || exit 1; done
taskset -c 0 "$OUT/origin" $P_ORIGIN &
OPID=$!
trap 'kill $OPID 2>/dev/null; rm -rf "$NGINX_CACHE"' EXIT
cat >"$OUT/gh.conf" <<CONF
global: { workers = 1; user = ""; state_dir = "$OUT"; log: { error = "$OUT/gh-error.log"; level = "warn"; access = ""; }; };
forward: { listeners = ( { address = "127.0.0.1:$P_FWD"; } ); allow_clients = [ "127.0.0.0/8" ]; deny_destinations = [ ]; };
reverse: {
  listeners = ( { address = "127.0.0.1:$P_GH"; } );
  $GH_CACHE
  upstreams = ( { name = "origin"; servers = ( { address = "127.0.0.1:$P_ORIGIN"; } ); } );
  sites = ( { default = true; routes = ( { path = "/"; upstream = "origin";$ROUTE_CACHE } ); } );
};
CONF
mkdir -p "$OUT/nginx"
sed -e "s|@DIR@|$OUT/nginx|g" -e "s|@PORT@|$P_NGINX|" -e "s|@ORIGIN@|$P_ORIGIN|" -e "s|@ACCESS@|off|" \
	-e "s|@CACHE@|$NGINX_CACHE|" -e '/# tls$/d' "$NGINX_CONF" >"$OUT/nginx/nginx.conf"
# valgrind keeps a few fds for itself: HAProxy's maxconn 9990 then fails to
# raise RLIMIT_NOFILE ("Cannot raise FD limit") and exits; 10 connections here
sed -e "s|@PORT@|$P_HAP|" -e "s|@ORIGIN@|$P_ORIGIN|" -e "s|maxconn 9990|maxconn 4000|" -e '/# tls$/d' \
	tests/bench/haproxy.cfg >"$OUT/haproxy.cfg"

run() {   # name port argv...   (RL_ARGS: extra rateload arguments)
	local name=$1 port=$2; shift 2
	taskset -c 1 valgrind --tool=callgrind --compress-strings=no --compress-pos=no --callgrind-out-file="$OUT/$name.cg" "$@" >"$OUT/$name.log" 2>&1 &
	local pid=$!
	for _ in $(seq 900); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
	taskset -c 0 "$OUT/rateload" -p "$port" ${RL_ARGS:-} -r 200 -c 10 -d 2 >/dev/null      # warm-up
	# zero the counters after warm-up, then the measured requests
	callgrind_control -z "$pid" >/dev/null 2>&1
	local res; res=$(taskset -c 0 "$OUT/rateload" -p "$port" ${RL_ARGS:-} -r 500 -c 10 -d 8)
	callgrind_control -d "$pid" >/dev/null 2>&1
	sleep 1
	kill -TERM "$pid"; wait "$pid" 2>/dev/null
	local ok; ok=$(echo "$res" | grep -o 'ok=[0-9]*' | cut -d= -f2)
	local f; f=$(ls -t "$OUT/$name.cg"* | grep -v '\.cg$' | head -1); [ -n "$f" ] || f="$OUT/$name.cg"
	echo "== $name: $res"
	python3 tests/bench/cgself.py "$f" 20 "${ok:-1}"
}
run gatehouse $P_GH "$GH" -c "$OUT/gh.conf"
if [ -n "${GATEHOUSE_BIN_B:-}" ]; then
	run gatehouse-B $P_GH "$GATEHOUSE_BIN_B" -c "$OUT/gh.conf"
	RL_ARGS="-a -H 127.0.0.1:$P_ORIGIN" run gatehouse-fwd $P_FWD "$GH" -c "$OUT/gh.conf"
	RL_ARGS="-a -H 127.0.0.1:$P_ORIGIN" run gatehouse-B-fwd $P_FWD "$GATEHOUSE_BIN_B" -c "$OUT/gh.conf"
fi
run nginx $P_NGINX nginx -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf"
run haproxy $P_HAP haproxy -db -f "$OUT/haproxy.cfg"
echo "# callgrind files in $OUT"
