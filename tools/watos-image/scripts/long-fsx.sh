#!/usr/bin/env bash
# One long fsx run on a fresh image mounted with watos-image, then the image checks.
# Usage: tools/watos-image/scripts/long-fsx.sh wfs|fat SIZE SEED OPS [mkfs options]
#   e.g. long-fsx.sh wfs 1G 1 100000        long-fsx.sh fat 256M 1 100000 --fat-type 32
# Needs root, /dev/fuse, `cargo build --release -p watos-image` and fsx in target/tools/bin
# (cargo install --root target/tools fsx). Exit status: non-zero if fsx or a check failed.
set -u
root=$(cd "$(dirname "$0")/../../.." && pwd)
fmt=$1; size=$2; seed=$3; ops=$4; shift 4
bin=${WATOS_IMAGE:-$root/target/release/watos-image}
fsx=${FSX:-$root/target/tools/bin/fsx}
. "$(dirname "$0")/mounted.sh"
mount_fresh "$@"
start=$(date +%s)
(cd "$mnt" && "$fsx" -N "$ops" -S "$seed" fsx.dat > "$d/fsx.log" 2>&1); rc=$?
echo "$fmt seed $seed ops $ops: fsx rc=$rc in $(( $(date +%s) - start )) s: $(tail -1 "$d/fsx.log")"
unmount_and_check
exit $rc
