#!/bin/bash
# TLS inspection: Gatehouse (forward.inspect) against Squid with ssl-bump
# (Debian's squid-openssl, "ssl_bump bump all", its certificate generator),
# both with the same ECDSA CA, both in front of the same nginx TLS origin on
# loopback, in the same run.  A first, simple scenario (not in bench.py yet):
#   ka     N small GETs over KC inspected keep-alive connections in parallel
#          (inspectload -k: one TLS session each, N/KC GETs one after another,
#          every response a 200 read in full; one curl with N URLs was the
#          bottleneck): requests/s and the proxy's CPU time per request
#   conns  M new CONNECTs with full handshakes client side (the leaf cached
#          after the first), made by tests/bench/inspectload.c (one process,
#          P in parallel; curl per connection measured process start-up):
#          connections/s and the proxy's CPU time per connection (-N: the
#          chain is verified, not the name: Squid's leaf for 127.0.0.1 has
#          no iPAddress SAN)
# Both proxies on CPU 1, curl and nginx on CPU 0.  Usage (root, Debian 12):
#   GATEHOUSE_BIN=build-release/gatehouse bash tests/bench/inspect.sh
# Switches: ORIGIN_RESUME=0 makes the origin refuse TLS session resumption
# (no cache, no tickets), so every connection is a full handshake on both
# sides, for both proxies; ONLY=gw|squid measures one proxy; PERF=1 records the
# proxy's profile over the new-connection phase; STRACE=1 counts its system
# calls there (strace -c, slows it: CPU figures of that run are not comparable).
set -uo pipefail
N=${N:-20000}
KC=${KC:-4}
M=${M:-2000}
P=${P:-4}
GW=${GATEHOUSE_BIN:-build/gatehouse}
T=$(mktemp -d /var/tmp/gh-inspect-bench.XXXXXX)
trap 'kill $(cat $T/*.pid 2>/dev/null) 2>/dev/null || true; sleep 0.5; cp $T/squid.log /tmp/inspect-bench-squid.log 2>/dev/null; rm -rf $T' EXIT
gcc -std=c11 -O2 -Wall tests/bench/inspectload.c -lssl -lcrypto -lpthread -o $T/inspectload || exit 1
gcc -std=c11 -D_GNU_SOURCE -O2 -Wall tests/bench/tlsfloor.c -lssl -lcrypto -o $T/tlsfloor || exit 1
P_ORIGIN=$((20000 + RANDOM % 5000)); P_GW=$((P_ORIGIN + 1)); P_SQ=$((P_ORIGIN + 2))

# CA (EC P-256) and an origin certificate for the address literal 127.0.0.1
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $T/ca.key -out $T/ca.pem \
  -days 30 -subj /CN=BenchCA -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $T/o.key -out $T/o.csr \
  -subj /CN=127.0.0.1 2>/dev/null
echo "subjectAltName=IP:127.0.0.1" > $T/o.ext
openssl x509 -req -in $T/o.csr -CA $T/ca.pem -CAkey $T/ca.key -CAcreateserial -out $T/o.pem -days 30 \
  -extfile $T/o.ext 2>/dev/null
# the proxies' CA (the same for both)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $T/gw.key -out $T/gw.pem \
  -days 30 -subj /CN=ProxyCA -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null

ORIGIN_TLS=""
[ "${ORIGIN_RESUME:-1}" = 0 ] && ORIGIN_TLS="ssl_session_cache off; ssl_session_tickets off;"
cat > $T/nginx.conf <<EOF
worker_processes 1; daemon off; pid $T/nginx.pid; error_log $T/nginx.err;
events { worker_connections 4096; }
http { log_format reused '\$ssl_session_reused \$connection'; access_log $T/origin.log reused;
  server { listen 127.0.0.1:$P_ORIGIN ssl; ssl_certificate $T/o.pem; ssl_certificate_key $T/o.key;
           keepalive_requests 1000000; $ORIGIN_TLS location / { return 200 "0123456789\n"; } } }
EOF
taskset -c 0 nginx -c $T/nginx.conf & echo $! > $T/nginx.pid

cat > $T/gw.conf <<EOF
global: { workers = 1; user = ""; state_dir = "$T"; log: { error = "$T/gw.err"; access = ""; }; };
forward: { listeners = ( { address = "127.0.0.1:$P_GW"; } ); allow_clients = [ "127.0.0.0/8" ];
  deny_destinations = [ "169.254.0.0/16" ]; connect_ports = [ $P_ORIGIN ];
  inspect: { mode = "all"; ca_cert = "$T/gw.pem"; ca_key = "$T/gw.key"; upstream_ca_file = "$T/ca.pem"; }; };
EOF
taskset -c 1 $GW -c $T/gw.conf & echo $! > $T/gw.pid

/usr/lib/squid/security_file_certgen -c -s $T/ssl_db -M 16MB >/dev/null
# Squid drops to its own user (proxy): its files must be reachable (a throwaway test CA)
chmod 0755 $T; chmod 0644 $T/gw.key; chown -R proxy: $T/ssl_db 2>/dev/null || chmod -R a+rwX $T/ssl_db
touch $T/squid.log; chmod 0666 $T/squid.log
# SQUID_STARE=1: server-first (stare at steps 1-2, bump at step 3): Squid
# then connects and handshakes to the origin for every client connection
# and mimics its certificate, as Gatehouse always does.  Default ("bump
# all" at step 1, client-first) mints from the CONNECT name without the
# origin and serves the requests over pooled origin connections: the
# "origin: ~N TLS connections" figure shows which work was done.
SQUID_BUMP="ssl_bump bump all"
[ -n "${SQUID_STARE:-}" ] && SQUID_BUMP="ssl_bump stare all
ssl_bump bump all"
cat > $T/squid.conf <<EOF
http_port 127.0.0.1:$P_SQ ssl-bump tls-cert=$T/gw.pem tls-key=$T/gw.key generate-host-certificates=on dynamic_cert_mem_cache_size=16MB
sslcrtd_program /usr/lib/squid/security_file_certgen -s $T/ssl_db -M 16MB
sslcrtd_children 5 startup=1 idle=1
$SQUID_BUMP
tls_outgoing_options cafile=$T/ca.pem
acl SSL_ports port $P_ORIGIN
http_access allow localhost
http_access deny all
cache deny all
access_log none
cache_log $T/squid.log
pid_filename $T/squid.run.pid
coredump_dir $T
workers 1
EOF
taskset -c 1 squid -N -f $T/squid.conf & echo $! > $T/squid.pid
sleep 3
# a random port someone else holds would measure their server: refuse
for who in nginx gw squid; do
  kill -0 $(cat $T/$who.pid) 2>/dev/null || { echo "$who did not start (port taken?)"; exit 1; }
done
echo "pinned: proxies on CPU 1, inspectload, curl and nginx on CPU 0; N=$N KC=$KC M=$M"

cpu() { awk '{print $14 + $15}' /proc/$1/stat; }
tck=$(getconf CLK_TCK)
for who in ${ONLY:-gw squid}; do
  port=$([ $who = gw ] && echo $P_GW || echo $P_SQ)
  pid=$(cat $T/$who.pid)
  # warm (the leaf cached); one timed connection for the record
  taskset -c 0 curl -s -o /dev/null -w "$who one connection: connect %{time_connect} appconnect %{time_appconnect} total %{time_total}\n" -x http://127.0.0.1:$port --cacert $T/gw.pem https://127.0.0.1:$P_ORIGIN/
  taskset -c 0 curl -s -o /dev/null -x http://127.0.0.1:$port --cacert $T/gw.pem https://127.0.0.1:$P_ORIGIN/
  c0=$(cpu $pid); t0=$(date +%s.%N)
  r=$(taskset -c 0 $T/inspectload -x $port -H 127.0.0.1 -p $P_ORIGIN -C $T/gw.pem -n $KC -c $KC -k $((N / KC)) -N)
  t1=$(date +%s.%N); c1=$(cpu $pid)
  echo "$who ka: $r; $(echo "$N / ($t1 - $t0)" | bc -l | cut -c1-8) req/s, cpu $(echo "($c1 - $c0) * 1000000 / $tck / $N" | bc -l | cut -c1-6) us/req"
  c0=$(cpu $pid); t0=$(date +%s.%N)
  # PERF=1: the proxy's profile over the new-connection phase, /tmp/inspect-bench-$who.perf
  [ -n "${PERF:-}" ] && { perf record -q -g -p $pid -o /tmp/inspect-bench-$who.perf 2>/dev/null & echo $! > $T/perf.pid; }
  [ -n "${STRACE:-}" ] && { strace -c -f -p $pid -o /tmp/inspect-bench-$who.strace & echo $! > $T/strace.pid; sleep 1; }
  : > $T/origin.log
  r=$(taskset -c 0 $T/inspectload -x $port -H 127.0.0.1 -p $P_ORIGIN -C $T/gw.pem -n $M -c $P -N)
  [ -n "${PERF:-}" ] && { kill -INT $(cat $T/perf.pid); wait $(cat $T/perf.pid) 2>/dev/null; rm -f $T/perf.pid; }
  [ -n "${STRACE:-}" ] && { kill -INT $(cat $T/strace.pid); wait $(cat $T/strace.pid) 2>/dev/null; rm -f $T/strace.pid; }
  t1=$(date +%s.%N); c1=$(cpu $pid)
  echo "$who conns: $r; $(echo "$M / ($t1 - $t0)" | bc -l | cut -c1-8) conn/s, cpu $(echo "($c1 - $c0) * 1000000 / $tck / $M" | bc -l | cut -c1-7) us/conn, origin: $(awk '{n++; if ($1 == "r") r++; if (!lo || $2 < lo) lo = $2; if ($2 > hi) hi = $2} END {printf "%d requests, ~%d TLS connections opened (nginx connection serials), %d requests on resumed ones", n, hi - lo + 1, r}' $T/origin.log)"
done
# the floor: what OpenSSL alone spends per full handshake, each side, without
# sockets (one ticket and a chain check = Gatehouse's origin handshake on a
# memo miss; -m = on a hit)
echo "OpenSSL floor, one full handshake (thread CPU, no sockets):"
echo "  2 tickets:          $(taskset -c 1 $T/tlsfloor $T/ca.pem $T/o.pem $T/o.key 127.0.0.1 -n 300 -t 2)"
echo "  1 ticket:           $(taskset -c 1 $T/tlsfloor $T/ca.pem $T/o.pem $T/o.key 127.0.0.1 -n 300 -t 1)"
echo "  1 ticket, memo hit: $(taskset -c 1 $T/tlsfloor $T/ca.pem $T/o.pem $T/o.key 127.0.0.1 -n 300 -t 1 -m)"
