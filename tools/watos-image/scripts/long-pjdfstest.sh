#!/usr/bin/env bash
# The whole pjdfstest suite on a fresh image mounted with watos-image, then the image checks.
# Usage: tools/watos-image/scripts/long-pjdfstest.sh wfs|fat SIZE [mkfs options]
#   e.g. long-pjdfstest.sh wfs 1G          long-pjdfstest.sh fat 256M --fat-type 32
# Needs root, /dev/fuse, `cargo build --release -p watos-image` and pjdfstest in target/tools/bin
# (or PJDFSTEST=path). WFS uses pjdfstest/posix.toml, FAT pjdfstest/fat.toml. Exit status: non-zero
# if a test failed or a check failed.
set -u
root=$(cd "$(dirname "$0")/../../.." && pwd)
fmt=$1; size=$2; shift 2
bin=${WATOS_IMAGE:-$root/target/release/watos-image}
pjd=${PJDFSTEST:-$root/target/tools/bin/pjdfstest}
cfg=$root/tools/watos-image/pjdfstest/$([ "$fmt" = fat ] && echo fat || echo posix).toml
. "$(dirname "$0")/mounted.sh"
mount_fresh "$@"
mkdir "$mnt/pjd" && chmod 777 "$mnt/pjd"
start=$(date +%s)
"$pjd" -c "$cfg" -p "$mnt/pjd" > "$d/pjd.log" 2>&1; rc=$?
grep FAILED "$d/pjd.log"
echo "$fmt pjdfstest rc=$rc in $(( $(date +%s) - start )) s: $(grep '^Summary' "$d/pjd.log")"
unmount_and_check
exit $rc
