#!/bin/bash
# Update an installed Gatehouse appliance disk to a new image, keeping its data:
#   packaging/appliance/update-image.sh NEW.img TARGET
# NEW.img: a raw image from build-image.sh.  TARGET: the appliance's disk (a
# block device such as /dev/sdb, or a raw image file), NOT mounted / not booted.
# Partitions 1 (ESP: systemd-boot, kernel, initrd) and 2 (gwroot) are
# overwritten from NEW.img; partition 3 (gwdata: /etc/gatehouse, state, logs,
# secrets) is left alone.  Both must have the same partition layout (all images
# from build-image.sh do: the sizes are fixed).
# For a qcow2 disk: qemu-nbd --connect=/dev/nbd0 disk.qcow2, then TARGET=/dev/nbd0.
set -euo pipefail
# An operator's tool: it names what is missing rather than installing it.
. "$(dirname "$0")/../need.sh"
gw_need_cmds update-image sfdisk:fdisk python3:python3 || exit 1
NEW=${1:?usage: update-image.sh NEW.img TARGET}
TARGET=${2:?usage: update-image.sh NEW.img TARGET}
parts() { sfdisk -J "$1" | python3 -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]
for p in t["partitions"][:3]:
    print(p["start"], p["size"], p.get("name", ""))'; }
a=$(parts "$NEW"); b=$(parts "$TARGET")
[ "$a" = "$b" ] || { echo "partition layouts differ:"; echo "new:    $a"; echo "target: $b"; exit 1; } >&2
n=0
while read -r start size name; do
	n=$((n + 1)); [ $n -le 2 ] || break
	echo "writing partition $n ($name): $((size / 2048)) MiB"
	# sectors of 512 bytes; build-image.sh aligns every partition to 1 MiB
	dd if="$NEW" of="$TARGET" bs=1M skip=$((start / 2048)) seek=$((start / 2048)) \
		count=$((size / 2048)) conv=notrunc,fsync status=none
done <<<"$a"
sync
echo "done: boot the appliance; /srv/gatehouse (config, secrets, state) was kept"
