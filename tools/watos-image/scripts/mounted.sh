# Shared by the long-suite scripts (sourced, not run): a fresh image mounted with watos-image in a
# temporary directory, and after the suite the unmount and the image checks.
# The caller sets `root`, `bin` (watos-image), `fmt` (wfs|fat) and `size`; extra arguments go to mkfs.
# After `mount_fresh`: `$d` (the temporary directory), `$img`, `$mnt`, `$pid` (the mount process).

mount_fresh() {
    d=$(mktemp -d /tmp/watos-suite.XXXX); img=$d/img; mnt=$d/mnt; mkdir "$mnt"
    # pjdfstest switches to unprivileged users, who must be able to reach the mount point.
    chmod 755 "$d"
    trap 'mountpoint -q "$mnt" && umount "$mnt"; rm -rf "$d"' EXIT
    "$bin" mkfs "$fmt" "$img" "$size" "$@" || exit 1
    "$bin" mount "$img" "$mnt" & pid=$!
    for _ in $(seq 300); do mountpoint -q "$mnt" && break; sleep 0.1; done
    mountpoint -q "$mnt" || { echo "the mount did not come up"; exit 1; }
}

# Unmounts (the mount flushes and commits on SIGTERM) and checks the image; sets rc=1 on any failure.
unmount_and_check() {
    kill -TERM "$pid"; wait "$pid" || rc=1
    "$bin" check "$img" || rc=1
    if [ "$fmt" = fat ] && command -v fsck.fat > /dev/null; then fsck.fat -n "$img" | tail -1; [ "${PIPESTATUS[0]}" = 0 ] || rc=1; fi
    if [ "$fmt" = wfs ]; then "$bin" scrub "$img" || rc=1; fi
}
