#!/bin/bash
# Checks on the built gatehouse .deb:
#   lintian, the unit's systemd-analyze security score (<= 2.0), and an
#   install / upgrade-with-locally-edited-conffile / remove / purge cycle with
#   dpkg on this host (no systemd PID 1 here: the maintainer scripts must
#   succeed anyway and must not try to start anything).
#   packaging/check-deb.sh [path/to/gatehouse_*.deb]
# Ends with "N passed, N failed"; exit status 1 if anything failed.
# It installs and then purges the package on this host: run it on CI or a
# scratch machine.  The "gatehouse" system user is left behind on purpose.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUTDIR=$HERE/out
# What the checks run: lintian, systemd-analyze, man, logrotate, curl,
# openssl, python3 (the free ports); runuser/setpriv come with util-linux.
. "$HERE/need.sh"
gw_need_pkgs check-deb lintian systemd man-db logrotate curl openssl python3 ||
	{ echo "check-deb: installing the tools failed"; echo "0 passed, 1 failed"; exit 1; }
gw_need_cmds check-deb lintian:lintian systemd-analyze:systemd man:man-db logrotate:logrotate curl:curl \
	openssl:openssl python3:python3 runuser:util-linux setpriv:util-linux ||
	{ echo "0 passed, 1 failed"; exit 1; }
DEB=${1:-$(ls "$OUTDIR"/gatehouse_*_amd64.deb 2>/dev/null | sort -V | tail -1)}
[ -f "${DEB:-}" ] || { echo "check-deb: no .deb (run packaging/build-deb.sh first)" >&2; exit 1; }
DEB=$(realpath "$DEB")
UNIT=$HERE/debian/gatehouse.service
MAX_SCORE=${GW_PKG_MAX_SCORE:-2.0}
APT=(apt-get -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -y -q)
DPKG=(dpkg --force-confdef --force-confold)
export DEBIAN_FRONTEND=noninteractive
TMP=$(mktemp -d /tmp/gatehouse-check-deb.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok()  { pass=$((pass + 1)); printf 'PASS  %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL  %s\n' "$*"; }
check() { local name=$1; shift; if "$@" >"$TMP/out" 2>&1; then ok "$name"; else bad "$name"; sed 's/^/      | /' "$TMP/out" | tail -15; fi; }

echo "== check-deb: $(basename "$DEB")"

# ---- static checks -------------------------------------------------------
changes=${DEB%_amd64.deb}_amd64.changes
lint_target=$DEB; [ -f "$changes" ] && lint_target=$changes
check "lintian --fail-on error,warning ($(basename "$lint_target"))" \
	lintian --fail-on error,warning "$lint_target"

score_line=$(systemd-analyze security --offline=true "$UNIT" 2>&1 | grep 'Overall exposure level')
score=$(sed -n 's/.*: \([0-9.]*\) .*/\1/p' <<<"$score_line")
echo "      systemd-analyze security --offline=true: ${score_line#→ }"
if [ -n "$score" ] && awk -v s="$score" -v m="$MAX_SCORE" 'BEGIN { exit !(s <= m) }'; then
	ok "unit exposure score $score <= $MAX_SCORE"
else
	bad "unit exposure score ${score:-?} > $MAX_SCORE"
fi

dpkg-deb -c "$DEB" > "$TMP/contents"
for f in ./usr/sbin/gatehouse ./etc/gatehouse/gatehouse.conf ./lib/systemd/system/gatehouse.service \
	./usr/lib/sysusers.d/gatehouse.conf ./usr/lib/tmpfiles.d/gatehouse.conf ./etc/logrotate.d/gatehouse \
	./usr/share/man/man8/gatehouse.8.gz ./usr/share/man/man5/gatehouse.conf.5.gz \
	./usr/share/doc/gatehouse/examples/malware.domains ./usr/share/doc/gatehouse/examples/site-example.conf; do
	grep -q " $f\$" "$TMP/contents" || { bad "package contains $f"; continue; }
done
grep -q ' ./usr/sbin/gatehouse$' "$TMP/contents" && ok "package contents (binary, conffile, unit, sysusers, tmpfiles, logrotate, man pages, examples)"
check "man pages render without warnings" sh -c \
	"for m in '$HERE'/man/*.[0-9]; do out=\$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z \"\$m\" 2>&1 >/dev/null); [ -z \"\$out\" ] || { echo \"\$m: \$out\"; exit 1; }; done"

# ---- install / upgrade / remove / purge ----------------------------------
if dpkg-query -W -f='${Status}' gatehouse 2>/dev/null | grep -q 'ok installed'; then
	echo "      note: gatehouse was already installed; purging it first"
	"${DPKG[@]}" -P gatehouse >/dev/null 2>&1 || true
fi

check "install (apt-get install ./deb, no systemd running)" "${APT[@]}" install "$DEB"
check "user gatehouse exists with a nologin shell" sh -c 'getent passwd gatehouse | grep -q ":/usr/sbin/nologin$"'
# After the install: the config says "su gatehouse gatehouse", and logrotate
# rejects it while that user does not exist (a fresh machine).
check "logrotate config parses (installed /etc/logrotate.d/gatehouse)" sh -c \
	'out=$(logrotate -d /etc/logrotate.d/gatehouse 2>&1); echo "$out" | grep error:; ! echo "$out" | grep -q error:'
check "/var/lib/gatehouse and /var/log/gatehouse exist, owned by gatehouse" sh -c \
	'[ "$(stat -c %U:%G /var/lib/gatehouse)" = gatehouse:gatehouse ] && [ "$(stat -c %U:%G /var/log/gatehouse)" = gatehouse:gatehouse ]'
check "unit enabled (multi-user.target.wants symlink), not started" \
	test -L /etc/systemd/system/multi-user.target.wants/gatehouse.service
upver=$(dpkg-deb -f "$DEB" Version | sed 's/[-+~].*//')
check "gatehouse -V prints the version ($upver)" sh -c "/usr/sbin/gatehouse -V 2>&1 | grep -F -q '$upver'"
check "gatehouse -t accepts the packaged /etc/gatehouse/gatehouse.conf (as user gatehouse)" \
	runuser -u gatehouse -- /usr/sbin/gatehouse -t -c /etc/gatehouse/gatehouse.conf
# The appliance config names first-boot files: give it throwaway ones.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=check \
	-keyout "$TMP/console.key" -out "$TMP/console.pem" >/dev/null 2>&1
printf 'admin:%s:admin\n' "$(openssl passwd -6 check)" > "$TMP/admin.users"
sed -e "s|/etc/gatehouse/tls/|$TMP/|; s|/etc/gatehouse/admin.users|$TMP/admin.users|" \
	"$HERE/appliance/gatehouse.conf" > "$TMP/appliance.conf"
check "gatehouse -t accepts the appliance configuration" /usr/sbin/gatehouse -t -c "$TMP/appliance.conf"
check "gatehouse -t rejects a broken configuration" sh -c \
	"printf 'global: { no_such_key = 1; };\n' > '$TMP/bad.conf'; ! /usr/sbin/gatehouse -t -c '$TMP/bad.conf'"
# Run the installed daemon by hand, as the unit would (user gatehouse), with
# the packaged config moved to loopback test ports.
read -r PF PR PA < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(3)]
for x in ss: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in ss])')
sed -e "s/\"\\*:3128\"/\"127.0.0.1:$PF\"/; s/\"\\*:80\"/\"127.0.0.1:$PR\"/; s/127.0.0.1:9090/127.0.0.1:$PA/" \
	/etc/gatehouse/gatehouse.conf > "$TMP/run.conf"
chmod 0644 "$TMP/run.conf"; chmod 0755 "$TMP"
setpriv --reuid=gatehouse --regid=gatehouse --init-groups -- /usr/sbin/gatehouse -c "$TMP/run.conf" > "$TMP/run.log" 2>&1 &
gpid=$!
for _ in $(seq 50); do curl -s -o /dev/null -m 1 http://127.0.0.1:$PR/ && break; sleep 0.2; done
check "installed daemon, packaged config: forward proxy refuses a denied destination (403)" sh -c \
	"[ \"\$(curl -s -o /dev/null -w '%{http_code}' -m 5 -x http://127.0.0.1:$PF http://127.0.0.1/)\" = 403 ]"
check "installed daemon, packaged config: reverse listener answers an unknown host (404)" sh -c \
	"[ \"\$(curl -s -o /dev/null -w '%{http_code}' -m 5 http://127.0.0.1:$PR/)\" = 404 ]"
kill -HUP $gpid 2>/dev/null; sleep 1
check "SIGHUP reload keeps serving" sh -c \
	"[ \"\$(curl -s -o /dev/null -w '%{http_code}' -m 5 http://127.0.0.1:$PR/)\" = 404 ]"
# logrotate: rename, then SIGUSR1 must make the daemon open a new file.
if [ -e /var/log/gatehouse/access.log ]; then
	mv /var/log/gatehouse/access.log /var/log/gatehouse/access.log.1
	kill -USR1 $gpid 2>/dev/null; sleep 1
	curl -s -o /dev/null -m 5 http://127.0.0.1:$PR/
	check "SIGUSR1 reopens the access log after rotation" test -e /var/log/gatehouse/access.log
else
	bad "access log /var/log/gatehouse/access.log written"
fi
kill -TERM $gpid 2>/dev/null
for _ in $(seq 50); do kill -0 $gpid 2>/dev/null || break; sleep 0.2; done
if kill -0 $gpid 2>/dev/null; then kill -9 $gpid; bad "SIGTERM stops the daemon within 10 s"
else wait $gpid; r=$?; [ $r = 0 ] && ok "SIGTERM stops the daemon (exit 0)" || { bad "SIGTERM stops the daemon (exit $r)"; tail -5 "$TMP/run.log" | sed 's/^/      | /'; }; fi
rm -f /var/log/gatehouse/access.log /var/log/gatehouse/access.log.1

check "systemd-analyze verify gatehouse.service" sh -c \
	'systemd-analyze verify /lib/systemd/system/gatehouse.service 2>&1 | grep -v -e "network-online.target" -e "nss-lookup.target" | { ! grep -q .; }'

# Upgrade to a newer version whose shipped conffile also changed, with the
# conffile edited locally: dpkg must keep the local file and write .dpkg-dist.
ver=$(dpkg-deb -f "$DEB" Version)
dpkg-deb -R "$DEB" "$TMP/up"
sed -i "s/^Version: .*/Version: ${ver}+upgradetest1/" "$TMP/up/DEBIAN/control"
echo "# changed in ${ver}+upgradetest1" >> "$TMP/up/etc/gatehouse/gatehouse.conf"
(cd "$TMP/up" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' | sort -z | xargs -0 md5sum > DEBIAN/md5sums)
dpkg-deb --root-owner-group -b "$TMP/up" "$TMP/gatehouse_${ver}+upgradetest1_amd64.deb" >/dev/null
echo "# local edit by check-deb" >> /etc/gatehouse/gatehouse.conf
check "upgrade with a locally edited conffile (--force-confold, non-interactive)" \
	"${APT[@]}" install "$TMP/gatehouse_${ver}+upgradetest1_amd64.deb"
check "upgraded version installed" sh -c "[ \"\$(dpkg-query -W -f='\${Version}' gatehouse)\" = '${ver}+upgradetest1' ]"
check "local conffile edit kept" grep -q '^# local edit by check-deb' /etc/gatehouse/gatehouse.conf
check "new upstream conffile saved as .dpkg-dist" grep -q "changed in ${ver}+upgradetest1" /etc/gatehouse/gatehouse.conf.dpkg-dist
rm -f /etc/gatehouse/gatehouse.conf.dpkg-dist
echo "state" > /var/lib/gatehouse/check-deb-state
echo "log" > /var/log/gatehouse/access.log

check "remove (dpkg -r)" "${DPKG[@]}" -r gatehouse
check "after remove: binary gone" test ! -e /usr/sbin/gatehouse
check "after remove: conffile, state and logs kept" sh -c \
	'test -f /etc/gatehouse/gatehouse.conf && test -f /var/lib/gatehouse/check-deb-state && test -f /var/log/gatehouse/access.log'

check "purge (dpkg -P)" "${DPKG[@]}" -P gatehouse
check "after purge: /etc/gatehouse, /etc/logrotate.d/gatehouse gone" sh -c \
	'test ! -e /etc/gatehouse && test ! -e /etc/logrotate.d/gatehouse'
check "after purge: /var/lib/gatehouse and /var/log/gatehouse gone" sh -c \
	'test ! -e /var/lib/gatehouse && test ! -e /var/log/gatehouse'
check "after purge: enable symlink gone" test ! -e /etc/systemd/system/multi-user.target.wants/gatehouse.service
check "after purge: system user kept (Debian convention)" getent passwd gatehouse

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
