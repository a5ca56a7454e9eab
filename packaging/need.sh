# Sourced by the packaging scripts: every script installs what it runs, so CI
# passes on a fresh Debian 12 machine with nothing but the checkout.
#
# gw_need_pkgs LABEL PKG...  install the Debian packages that are not
#     installed yet (non-interactive, waits for the dpkg lock; nothing is
#     done when all are there).  Skipped with GW_PKG_NO_APT=1.  apt's
#     output goes to a log (its tail is printed when it fails); returns 1 then.
# gw_need_cmds LABEL CMD:PKG|/FILE:PKG...  preflight: prints
#     "LABEL: missing: CMD (package PKG)" for each command or file that is
#     still missing, first one first; returns 1 if any is.
gw_need_pkgs() {
	local label=$1 p missing=()
	shift
	[ "${GW_PKG_NO_APT:-0}" = 1 ] && return 0
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	local log=${TMPDIR:-/tmp}/gatehouse-apt-$label.log t=$(date +%s)
	printf '== %s: installing %s (apt log: %s)\n' "$label" "${missing[*]}" "$log"
	if { apt-get -o DPkg::Lock::Timeout=600 update -q &&
	     DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
		--no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
		printf '== %s: %s in %s s\n' "$label" "$(grep -m1 'newly installed' "$log")" "$(( $(date +%s) - t ))"
	else
		tail -25 "$log"; printf '== %s: apt-get FAILED (log: %s)\n' "$label" "$log"; return 1
	fi
}

gw_need_cmds() {
	local label=$1 item what pkg rc=0
	shift
	for item in "$@"; do
		what=${item%%:*} pkg=${item#*:}
		case "$what" in
		/*) [ -e "$what" ] && continue ;;
		*) command -v "$what" >/dev/null 2>&1 && continue ;;
		esac
		printf '%s: missing: %s (package %s)\n' "$label" "$what" "$pkg" >&2
		rc=1
	done
	return $rc
}
