#!/usr/bin/env bash
# The whole pjdfstest suite on a fresh image mounted with watos-image, then the image checks.
# Usage: servers/watos-image/scripts/long-pjdfstest.sh wfs|fat SIZE [mkfs options]
#   e.g. long-pjdfstest.sh wfs 1G          long-pjdfstest.sh fat 256M --fat-type 32
# Needs root, /dev/fuse, `cargo build --release -p watos-image` and pjdfstest in target/tools/bin
# (or PJDFSTEST=path). WFS uses pjdfstest/posix.toml, FAT pjdfstest/fat.toml. Exit status: non-zero
# if a test failed or a check failed.
set -u
root=$(cd "$(dirname "$0")/../../.." && pwd)
fmt=$1; size=$2; shift 2
bin=${WATOS_IMAGE:-$root/target/release/watos-image}
pjd=${PJDFSTEST:-$root/target/tools/bin/pjdfstest}
cfg=$root/servers/watos-image/pjdfstest/$([ "$fmt" = fat ] && echo fat || echo posix).toml
d=$(mktemp -d /tmp/longpjd.XXXX); img=$d/img; mnt=$d/mnt; mkdir "$mnt"
# The suite switches to unprivileged users, who must be able to reach the mount point.
chmod 755 "$d"
trap 'mountpoint -q "$mnt" && umount "$mnt"; rm -rf "$d"' EXIT
"$bin" mkfs "$fmt" "$img" "$size" "$@" || exit 1
"$bin" mount "$img" "$mnt" & pid=$!
for _ in $(seq 300); do mountpoint -q "$mnt" && break; sleep 0.1; done
mkdir "$mnt/pjd" && chmod 777 "$mnt/pjd"
start=$(date +%s)
"$pjd" -c "$cfg" -p "$mnt/pjd" > "$d/pjd.log" 2>&1; rc=$?
grep FAILED "$d/pjd.log"
echo "$fmt pjdfstest rc=$rc in $(( $(date +%s) - start )) s: $(grep '^Summary' "$d/pjd.log")"
kill -TERM $pid; wait $pid || rc=1
"$bin" check "$img" || rc=1
if [ "$fmt" = fat ] && command -v fsck.fat > /dev/null; then fsck.fat -n "$img" | tail -1; [ "${PIPESTATUS[0]}" = 0 ] || rc=1; fi
if [ "$fmt" = wfs ]; then "$bin" scrub "$img" || rc=1; fi
exit $rc
