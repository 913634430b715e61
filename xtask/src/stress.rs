//! The stress boot: concurrent clients on both mounts while every storage server is killed in turn,
//! then the host's view of the images it leaves.
//!
//! Design: `fstest-stress` (initrd/test-apps/fstest, src/stress.rs) starts four client programs and
//! has init kill and stop the storage servers under them; each client prints `CHECK` lines for its
//! recovery and its read-backs, with the seed and length of its last fsynced contents. The harness
//! judges those lines, then checks the images like the kill boot's: `watos-image check` on WFS as it
//! is, `fsck.fat -a` then `fsck.fat -n` on FAT (no journal: a kill mid-write may leave lost clusters
//! and the dirty bit), and each client's file read from the image (`watos-image get`, mtools) must
//! be byte-exact against the generator with the seed the client printed. Two cheap negative cases
//! show the host verdicts can fail: a file no client wrote reads as missing, and a copy of the FAT
//! image with its dirty bit set fails `fsck.fat -n`.

use crate::harness::{check_of, kernel_said, Verdicts};
use crate::storage::{boot, check_killed_images, image_tool, make_images, mtools_get};
use crate::watos::{build_storage, Options, QEMU_SUCCESS};
use libwatos::service::pattern;
use std::path::Path;
use std::process::Command;

/// The concurrent clients of the stress boot (initrd/test-apps/fstest, src/stress.rs `CLIENTS`).
pub const CLIENTS: [&str; 4] = ["stress-wfs1", "stress-wfs2", "stress-fat1", "stress-fat2"];
/// The servers the stress boot has init kill under them (`stress::VICTIMS`), and how many kills.
const VICTIMS: [&str; 5] = ["fat-server", "blockcache1", "vfs-server", "wfs-server", "blockcache0"];
const KILLS: usize = 8;
/// Outages of the stress boot: servers stopped and restarted later (`stress::OUTAGES`).
const OUTAGES: usize = 3;

/// The stress boot on fresh images: four clients on both mounts while every storage server is
/// killed in turn; each client must recover and read back exactly what it fsynced, and so must the
/// host from the images afterwards.
pub fn run_tests(opts: &Options, v: &mut Verdicts) {
    let Some(art) = build_storage(opts, "fstest-stress") else {
        v.check(false, "the stress initrd builds");
        return;
    };
    let Some(disks) = make_images("stress-") else {
        v.check(false, "the stress disk images are made");
        return;
    };
    let (log, status) = boot(&art, opts, &disks, "4 (fresh images: concurrent clients while servers die)");
    judge(&log, status, v);
    let Some(tool) = image_tool() else {
        v.check(false, "host (stress images): watos-image builds");
        return;
    };
    check_killed_images(&disks, &tool, "stress images", v);
    v.check(
        dirty_copy_is_refused(&disks.fat),
        "host (stress images): fsck.fat -n refuses a copy of the FAT image with the dirty bit set",
    );
    for name in CLIENTS {
        let Some((seed, len)) = last_fsync(&log, name) else {
            v.check(false, &format!("host (stress images): {name} printed its last fsync's seed and length"));
            continue;
        };
        let got = if is_fat(name) {
            mtools_get(&disks.fat, &format!("/{name}.bin"))
        } else {
            wfs_get(&tool, &disks.wfs, &format!("/{name}.bin"))
        };
        v.check(
            matches_fsync(got.as_deref(), seed, len),
            &format!(
                "host (stress images): {} reads {}'s last fsynced file byte-exact (seed {seed:#x}, {len} bytes; read {:?})",
                if is_fat(name) { "mtools" } else { "watos-image get" },
                name,
                got.as_ref().map(Vec::len)
            ),
        );
    }
    // The read-back can fail: a file no client wrote is not there.
    v.check(
        wfs_get(&tool, &disks.wfs, "/stress-none.bin").is_none()
            && mtools_get(&disks.fat, "/stress-none.bin").is_none(),
        "host (stress images): a file no client wrote reads as missing on both images",
    );
}

/// The FAT verdict can fail: a copy of the (repaired) image with its dirty bit set, as a server
/// killed mid-write leaves it, must not pass `fsck.fat -n`. The image is FAT16 (16 MiB), whose dirty
/// bit is bit 0 of boot-sector byte 0x25.
fn dirty_copy_is_refused(fat: &Path) -> bool {
    let copy = fat.with_extension("dirty.img");
    let Ok(mut bytes) = std::fs::read(fat) else { return false };
    let Some(flags) = bytes.get_mut(0x25) else { return false };
    *flags |= 1;
    if std::fs::write(&copy, &bytes).is_err() {
        return false;
    }
    let refused = Command::new("fsck.fat").arg("-n").arg(&copy).output().is_ok_and(|o| !o.status.success());
    let _ = std::fs::remove_file(&copy);
    refused
}

/// Whether client `name` works on the FAT mount (`/fat/`, the FAT image's root).
fn is_fat(name: &str) -> bool {
    name.contains("fat")
}

/// Reads `path` from a WFS image with `watos-image get`.
fn wfs_get(tool: &Path, img: &Path, path: &str) -> Option<Vec<u8>> {
    let out = img.with_extension(path.trim_start_matches('/'));
    let _ = std::fs::remove_file(&out);
    let ok = Command::new(tool).arg("get").arg(img).arg(path).arg(&out).output();
    ok.is_ok_and(|o| o.status.success()).then(|| std::fs::read(&out).ok()).flatten()
}

/// The seed and length of `client`'s last fsynced contents, from its read-back `CHECK` line
/// (`... last fsync: seed 0x..., N bytes)`); none if it printed none or never fsynced.
fn last_fsync(log: &[String], client: &str) -> Option<(u64, usize)> {
    let prefix = format!("stress: {client}: fsynced bytes read back exactly");
    let line = log.iter().filter_map(|l| check_of(l)).find(|(_, w)| w.starts_with(&prefix))?.1;
    let rest = line.rsplit_once("last fsync: seed 0x")?.1;
    let (seed, rest) = rest.split_once(", ")?;
    let len = rest.strip_suffix(" bytes)")?;
    let (seed, len) = (u64::from_str_radix(seed, 16).ok()?, len.parse().ok()?);
    (len > 0).then_some((seed, len))
}

/// Whether bytes read from an image are exactly the contents the client fsynced last.
fn matches_fsync(got: Option<&[u8]>, seed: u64, len: usize) -> bool {
    got.is_some_and(|g| g == pattern(seed, len))
}

fn judge(log: &[String], status: Option<i32>, v: &mut Verdicts) {
    let boot = "stress boot";
    let has = |s: &str| log.iter().any(|l| l.contains(s));
    let kernel = |s: &str| kernel_said(log, s).is_some();
    for line in log {
        if let Some((ok, what)) = check_of(line) {
            v.check(ok, &format!("{boot}: {what}"));
        }
    }
    // Started and three results per client (recovery, direct reads, read-back), one per kill and
    // outage, the stop file and "every client ended".
    let want = CLIENTS.len() * 4 + KILLS + OUTAGES + 2;
    let n = log.iter().filter(|l| check_of(l).is_some_and(|(_, w)| w.starts_with("stress: "))).count();
    v.check(n == want, &format!("{boot}: the stress test printed {n} CHECK lines of {want}"));
    v.check(!has("KERNEL PANIC") && !has("KERNEL FAULT"), &format!("{boot}: no kernel panic or fault"));
    v.check(has("fstest: stress done"), &format!("{boot}: fstest: stress done"));
    v.check(!has("giving up on it"), &format!("{boot}: init gave up on no service"));
    for victim in VICTIMS {
        v.check(
            kernel(&format!("({victim}) killed by the supervisor"))
                && has(&format!("init: restarted {victim} as task")),
            &format!("{boot}: {victim} was killed under the clients and init restarted it"),
        );
    }
    for task in ["fstest-stress", "vfs-server", "wfs-server", "fat-server", "blockcache0", "blockcache1", "init"]
        .iter()
        .chain(&CLIENTS)
    {
        v.check(kernel(&format!("({task}) exited with code 0")), &format!("{boot}: {task} exited with code 0"));
    }
    v.check(status == Some(QEMU_SUCCESS), &format!("{boot}: QEMU exit status {status:?} is the kernel's success"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    const LINE: &str = "CHECK PASS stress: stress-fat1: fsynced bytes read back exactly (40 reads, 0 wrong, \
                        final read Ok(5751); last fsync: seed 0x5eed53a4, 5751 bytes)";

    #[test]
    fn last_fsync_is_parsed_from_the_clients_line_only() {
        let l = log(&["stress-fat1: hello", LINE]);
        assert_eq!(last_fsync(&l, "stress-fat1"), Some((0x5eed_53a4, 5751)));
        assert_eq!(last_fsync(&l, "stress-fat2"), None);
        // A failed line still names what was fsynced; the boot's verdicts judge it separately.
        let failed = log(&[&LINE.replace("CHECK PASS", "CHECK FAIL")]);
        assert_eq!(last_fsync(&failed, "stress-fat1"), Some((0x5eed_53a4, 5751)));
        // Not a CHECK line, never fsynced, or cut short: nothing to compare against.
        assert_eq!(last_fsync(&log(&[LINE.trim_start_matches("CHECK PASS ")]), "stress-fat1"), None);
        assert_eq!(last_fsync(&log(&[&LINE.replace("5751 bytes", "0 bytes")]), "stress-fat1"), None);
        assert_eq!(last_fsync(&log(&[&LINE[..LINE.len() - 8]]), "stress-fat1"), None);
    }

    #[test]
    fn the_image_file_must_be_exactly_the_last_fsync() {
        let want = pattern(0x5eed_53a4, 5751);
        assert!(matches_fsync(Some(&want), 0x5eed_53a4, 5751));
        assert!(!matches_fsync(None, 0x5eed_53a4, 5751));
        assert!(!matches_fsync(Some(&want[..5750]), 0x5eed_53a4, 5751));
        assert!(!matches_fsync(Some(&pattern(0x5eed_53a6, 5751)), 0x5eed_53a4, 5751));
        let mut flipped = want.clone();
        flipped[4000] ^= 1;
        assert!(!matches_fsync(Some(&flipped), 0x5eed_53a4, 5751));
    }
}
