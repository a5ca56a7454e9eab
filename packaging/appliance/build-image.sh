#!/bin/bash
# Build the Gatehouse appliance disk image from the .deb:
#   packaging/appliance/build-image.sh [path/to/gatehouse_*.deb]
# Output: packaging/out/gatehouse-appliance.img (raw, GPT, UEFI) and
#         packaging/out/gatehouse-appliance.qcow2
#
# Layout (GPT):  1 ESP 128 MiB (systemd-boot, kernel, initrd)
#                2 gwroot ext4 (Debian 12 minimal root, replaced by updates)
#                3 gwdata ext4 (config, secrets, state, logs; kept by updates)
# No loop devices or mounts are needed: mmdebstrap builds the root in a
# directory, mkfs.ext4 -d fills the file systems, mtools fills the ESP.
#
# Env: GW_IMG_REUSE_ROOTFS=1  reuse the mmdebstrap tree from the last run and
#                             only reinstall the .deb and the overlay (dev loop)
#      GW_IMG_NO_QCOW2=1      skip the qcow2 conversion
#      GW_IMG_NO_APT=1        do not install the image tools
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUTDIR=$(cd "$HERE/.." && pwd)/out
WORK=${GW_IMG_WORK:-$OUTDIR/image-work}
DEB=${1:-}
if [ -z "$DEB" ]; then
	DEB=$(ls "$OUTDIR"/gatehouse_*_amd64.deb 2>/dev/null | sort -V | tail -1 || true)
fi
[ -n "$DEB" ] && [ -f "$DEB" ] || { echo "build-image: no .deb (run packaging/build-deb.sh first)" >&2; exit 1; }
DEB=$(realpath "$DEB")
IMG=$OUTDIR/gatehouse-appliance.img
QCOW=$OUTDIR/gatehouse-appliance.qcow2
ROOT=$WORK/rootfs
ESP_MB=128 ROOT_MB=2048 DATA_MB=256   # fixed layout: updates replace p1+p2 in place
t0=$(date +%s)
log() { printf '== build-image [%4ss]: %s\n' "$(( $(date +%s) - t0 ))" "$*"; }

[ "$(id -u)" = 0 ] || { echo "build-image: must run as root (mmdebstrap --mode=root)" >&2; exit 1; }

. "$HERE/../need.sh"
[ "${GW_IMG_NO_APT:-0}" = 1 ] ||
	gw_need_pkgs build-image mmdebstrap qemu-utils fdisk dosfstools mtools systemd-boot-efi e2fsprogs
gw_need_cmds build-image mmdebstrap:mmdebstrap qemu-img:qemu-utils sfdisk:fdisk mkfs.vfat:dosfstools \
	mcopy:mtools /usr/lib/systemd/boot/efi/systemd-bootx64.efi:systemd-boot-efi mkfs.ext4:e2fsprogs || exit 1

mkdir -p "$WORK"
# No MIRROR argument on purpose: mmdebstrap then adds bookworm-updates and
# bookworm-security (with an explicit mirror the image silently lacks them).
if [ "${GW_IMG_REUSE_ROOTFS:-0}" = 1 ] && [ -x "$ROOT/usr/sbin/gatehouse" ]; then
	log "reusing $ROOT; reinstalling $(basename "$DEB")"
	cp "$DEB" "$ROOT/tmp/gatehouse.deb"
	chroot "$ROOT" dpkg -i --force-confold /tmp/gatehouse.deb >/dev/null
	rm -f "$ROOT/tmp/gatehouse.deb"
else
	rm -rf "$ROOT"
	log "mmdebstrap bookworm minbase + $(basename "$DEB") (several minutes)"
	mmdebstrap --mode=root --variant=minbase --quiet \
		--hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
		--include=systemd-sysv,udev,dbus,systemd-resolved,linux-image-amd64,busybox,openssl,logrotate,iproute2,ca-certificates,login,passwd,vim-tiny,less,keepalived,curl \
		--include="$DEB" \
		--customize-hook='chroot "$1" apt-get clean' \
		bookworm "$ROOT"
fi

log "appliance customisation"
cp -a "$HERE/overlay/." "$ROOT/"
install -D -m 0644 "$HERE/gatehouse.conf" "$ROOT/usr/share/gatehouse-appliance/gatehouse.conf"
install -m 0644 "$HERE/gatehouse.conf" "$ROOT/etc/gatehouse/gatehouse.conf"
chroot "$ROOT" systemctl enable gatehouse.service systemd-networkd.service systemd-resolved.service \
	gatehouse-appliance-init.service gatehouse-appliance-status.service gatehouse-keepalived.path >/dev/null 2>&1
# HA off by default: keepalived starts only once /etc/gatehouse/keepalived.conf
# exists (gatehouse-keepalived.path; see keepalived.service.d/gatehouse.conf)
chroot "$ROOT" systemctl disable keepalived.service >/dev/null 2>&1 || true
# Test-friendly and quiet: no clock sync against the internet by default (set
# NTP= in /etc/systemd/timesyncd.conf and unmask to enable), no apt timers.
chroot "$ROOT" systemctl mask systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 || true
chroot "$ROOT" passwd -l root >/dev/null
ln -sf /run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"
# No secrets or identity baked in.
: > "$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id" "$ROOT"/etc/ssh/ssh_host_* "$ROOT/etc/issue.d/50-gatehouse.issue"
rm -f "$ROOT"/etc/gatehouse/admin.users "$ROOT"/etc/gatehouse/tls/console.*
rm -rf "$ROOT"/var/lib/gatehouse/* "$ROOT"/var/log/gatehouse/* "$ROOT"/var/cache/apt/*.bin
rm -f "$ROOT"/var/log/*.log "$ROOT"/var/log/apt/*

# Hygiene gate: fail the build rather than ship an image with baked-in secrets.
[ ! -s "$ROOT/etc/machine-id" ] || { echo "machine-id not empty" >&2; exit 1; }
grep -q '^root:[!*]' "$ROOT/etc/shadow" || { echo "root not locked" >&2; exit 1; }
! ls "$ROOT"/etc/ssh/ssh_host_* >/dev/null 2>&1 || { echo "SSH host keys present" >&2; exit 1; }

log "splitting persistent data (etc, state, log) onto the gwdata file system"
DATA=$WORK/data
rm -rf "$DATA"; mkdir -p "$DATA"
gh_uid=$(chroot "$ROOT" id -u gatehouse); gh_gid=$(chroot "$ROOT" id -g gatehouse)
mkdir -p "$DATA/etc" "$DATA/state" "$DATA/log"
cp -a "$ROOT/etc/gatehouse/." "$DATA/etc/"
mkdir -p "$DATA/etc/lists" "$DATA/etc/tls"
chown root:"$gh_gid" "$DATA/etc/tls"; chmod 0750 "$DATA/etc/tls"
chown "$gh_uid:$gh_gid" "$DATA/state" "$DATA/log"; chmod 0750 "$DATA/state" "$DATA/log"
cat > "$DATA/README" <<'EOT'
Gatehouse appliance data partition (LABEL=gwdata), mounted on /srv/gatehouse.
  etc/    -> /etc/gatehouse      configuration, console users, TLS, lists
  state/  -> /var/lib/gatehouse  daemon state (global.state_dir)
  log/    -> /var/log/gatehouse  access log
  initial-admin-password         first-boot console password (delete after changing it)
An image update replaces the boot and root partitions only; this one is kept.
EOT
# The root keeps empty mount points.
rm -rf "$ROOT/etc/gatehouse" "$ROOT/var/lib/gatehouse" "$ROOT/var/log/gatehouse"
mkdir -p "$ROOT/etc/gatehouse" "$ROOT/var/lib/gatehouse" "$ROOT/var/log/gatehouse" "$ROOT/srv/gatehouse"

log "file systems"
KVER=$(ls "$ROOT"/boot/vmlinuz-* | sed 's|.*/vmlinuz-||' | sort -V | tail -1)
root_mb=$ROOT_MB; used_mb=$(du -sm "$ROOT" | cut -f1)
[ "$used_mb" -lt $(( ROOT_MB * 8 / 10 )) ] || { echo "root tree ${used_mb} MiB does not fit ${ROOT_MB} MiB with 20% free" >&2; exit 1; }
rm -f "$WORK"/esp.img "$WORK"/root.img "$WORK"/data.img
mkfs.vfat -F 32 -n ESP -C "$WORK/esp.img" $((ESP_MB * 1024)) >/dev/null
mmd -i "$WORK/esp.img" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i "$WORK/esp.img" /usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$WORK/esp.img" "$ROOT/boot/vmlinuz-$KVER" ::/vmlinuz
mcopy -i "$WORK/esp.img" "$ROOT/boot/initrd.img-$KVER" ::/initrd.img
printf 'default gatehouse.conf\ntimeout 0\n' | mcopy -i "$WORK/esp.img" - ::/loader/loader.conf
printf 'title Gatehouse appliance (%s)\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=LABEL=gwroot rw console=tty0 console=ttyS0,115200 quiet\n' "$KVER" \
	| mcopy -i "$WORK/esp.img" - ::/loader/entries/gatehouse.conf
truncate -s "${root_mb}M" "$WORK/root.img"
mkfs.ext4 -q -L gwroot -d "$ROOT" "$WORK/root.img"
truncate -s "${DATA_MB}M" "$WORK/data.img"
mkfs.ext4 -q -L gwdata -d "$DATA" "$WORK/data.img"

log "disk image (GPT: ESP ${ESP_MB}M, root ${root_mb}M, data ${DATA_MB}M)"
rm -f "$IMG"
truncate -s $(( 1 + ESP_MB + root_mb + DATA_MB + 1 ))M "$IMG"
sfdisk -q "$IMG" <<EOT
label: gpt
start=1MiB, size=${ESP_MB}MiB, type=uefi, name=esp
size=${root_mb}MiB, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709, name=gwroot
size=${DATA_MB}MiB, type=0fc63daf-8483-4772-8e79-3d69d8477de4, name=gwdata
EOT
dd if="$WORK/esp.img"  of="$IMG" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$WORK/root.img" of="$IMG" bs=1M seek=$(( 1 + ESP_MB )) conv=notrunc,sparse status=none
dd if="$WORK/data.img" of="$IMG" bs=1M seek=$(( 1 + ESP_MB + root_mb )) conv=notrunc,sparse status=none
rm -f "$WORK"/esp.img "$WORK"/root.img "$WORK"/data.img

if [ "${GW_IMG_NO_QCOW2:-0}" != 1 ]; then
	log "qcow2"
	rm -f "$QCOW"
	qemu-img convert -c -O qcow2 "$IMG" "$QCOW"
fi
sfdisk -l "$IMG" | tail -4
ls -lsh "$IMG" ${GW_IMG_NO_QCOW2:+} "$QCOW" 2>/dev/null || true
log "done: $IMG${GW_IMG_NO_QCOW2:+}"
