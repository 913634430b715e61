//! `cargo xtask bench aio`: random 4 KiB reads of a file three times the block cache's size on WFS,
//! through the synchronous API (one request outstanding) and through the asynchronous `Queue`, in
//! QEMU (TCG, release build).
//!
//! Design: one boot per mode (`aiobench-sync`, `aiobench-async`, initrd/test-apps/aiobench), each on a
//! fresh copy of the same images, so the block cache starts cold both times and the virtio
//! queue-depth counters blockcache0 prints when it stops belong to that mode alone. The file is
//! made on the host (each 4 KiB block from `service::pattern`, as the app checks it) and put on a
//! 64 MiB WFS image with `watos-image`. The app prints `BENCH aio | ...` (app- and vfs-level
//! outstanding requests, time, throughput) and a `CHECK` line for the bytes it read.
//!
//! [`test`] is the cheap correctness boot of `cargo xtask test`: `aiobench-check` on the same kind
//! of images, every `CHECK` line it prints, and blockcache0's virtio queue depth above 1.

use std::path::Path;

use libwatos::service::pattern;

use crate::harness::Verdicts;
use crate::storage::{boot_with_input, image_tool, run_tool, Disks};
use crate::watos::{build_storage, Options, QEMU_SUCCESS};
use crate::workspace_root;

/// Must match initrd/test-apps/aiobench.
const BLOCK: usize = 4096;
const BLOCKS: u64 = 6144;

fn block(b: u64) -> Vec<u8> {
    pattern(0xA10_0000 + b, BLOCK)
}

/// Fresh images with the benchmark file on WFS.
fn images(dir: &Path) -> Option<Disks> {
    let tool = image_tool()?;
    let d = Disks { wfs: dir.join("aio-wfs.img"), fat: dir.join("aio-fat.img") };
    let file = dir.join("aio.bin");
    let data: Vec<u8> = (0..BLOCKS).flat_map(block).collect();
    std::fs::write(&file, data).ok()?;
    let _ = std::fs::remove_file(&d.wfs);
    let _ = std::fs::remove_file(&d.fat);
    let (wfs, fat, host) = (d.wfs.to_str()?, d.fat.to_str()?, file.to_str()?);
    let ok = run_tool(&tool, &["mkfs", "wfs", wfs, "64M"])
        && run_tool(&tool, &["mkdir", wfs, "/fat"])
        && run_tool(&tool, &["put", wfs, host, "/aio.bin"])
        && run_tool(&tool, &["mkfs", "fat", fat, "16M"]);
    ok.then_some(d)
}

/// The fields after `prefix` on the first line that has it, split at `|`.
fn fields(log: &[String], prefix: &str) -> Option<Vec<String>> {
    let line = log.iter().find_map(|l| l.split_once(prefix).map(|(_, rest)| rest.to_string()))?;
    Some(line.split('|').map(|f| f.trim().to_string()).collect())
}

pub fn run() -> bool {
    let opts = Options { release: true, ..Options::default() };
    let dir = workspace_root().join("target/watos");
    let Some(master) = images(&dir) else {
        eprintln!("bench aio: cannot make the images");
        return false;
    };
    let mut rows = Vec::new();
    let mut ok = true;
    for mode in ["sync", "async"] {
        let app: &'static str = if mode == "sync" { "aiobench-sync" } else { "aiobench-async" };
        let Some(art) = build_storage(&opts, app) else { return false };
        let d = Disks { wfs: dir.join(format!("aio-{mode}-wfs.img")), fat: dir.join(format!("aio-{mode}-fat.img")) };
        if std::fs::copy(&master.wfs, &d.wfs).is_err() || std::fs::copy(&master.fat, &d.fat).is_err() {
            eprintln!("bench aio: cannot copy the images");
            return false;
        }
        let (log, _) = boot_with_input(&art, &opts, &d, &format!("bench aio, {mode}"), None);
        let bench = fields(&log, "BENCH aio | ");
        let depth = fields(&log, "blockcache0: virtio depth | ");
        let checked = log.iter().any(|l| l.starts_with("CHECK PASS") && l.contains("returned the right bytes"));
        if !checked || log.iter().any(|l| l.starts_with("CHECK FAIL")) || bench.is_none() {
            eprintln!("bench aio: the {mode} run did not complete correctly");
            ok = false;
        }
        rows.push((bench.unwrap_or_default(), depth.unwrap_or_default()));
    }
    println!("\n## bench: aio (QEMU TCG, release build; 1500 random 4 KiB reads of a 24 MiB file, 8 MiB cache)\n");
    println!("| API | reads | ms | MB/s | app outstanding max / mean | vfs held max / mean | vfs run max / mean | virtio in flight max / mean (requests) |");
    println!("|---|---|---|---|---|---|---|---|");
    for (b, v) in &rows {
        let g = |i: usize| b.get(i).cloned().unwrap_or_else(|| "?".into());
        let h = |i: usize| v.get(i).cloned().unwrap_or_else(|| "?".into());
        println!(
            "| {} | {} | {} | {} | {} / {} | {} / {} | {} / {} | {} / {} ({}) |",
            g(0),
            g(1),
            g(2),
            g(3),
            g(4),
            g(5),
            g(6),
            g(7),
            g(8),
            g(9),
            h(0),
            h(1),
            h(2)
        );
    }
    ok
}

/// The asynchronous-I/O boot of `cargo xtask test` (storage part).
pub fn test(opts: &Options, v: &mut Verdicts) {
    let dir = workspace_root().join("target/watos");
    let (Some(art), Some(d)) = (build_storage(opts, "aiobench-check"), images(&dir)) else {
        v.check(false, "aio boot: the initrd and the images with /aio.bin are made");
        return;
    };
    let (log, status) = boot_with_input(&art, opts, &d, "aio (aiobench-check: asynchronous I/O)", None);
    let mut checks = 0;
    for line in &log {
        if let Some((_, what)) = line.split_once("CHECK PASS ") {
            v.check(true, &format!("aio boot: {what}"));
            checks += 1;
        } else if let Some((_, what)) = line.split_once("CHECK FAIL ") {
            v.check(false, &format!("aio boot: {what}"));
        }
    }
    // aiobench-check's eleven and the kernel's frame check.
    v.check(checks >= 12, &format!("aio boot: every property reported ({checks} CHECK PASS lines)"));
    let depth = fields(&log, "blockcache0: virtio depth | ").and_then(|f| f.first()?.parse::<u32>().ok());
    v.check(
        depth.is_some_and(|d| d > 1),
        &format!("aio boot: blockcache0 had more than one virtio request in flight (max {depth:?})"),
    );
    v.check(
        !log.iter().any(|l| l.contains("KERNEL PANIC") || l.contains("KERNEL FAULT")),
        "aio boot: no kernel panic or fault",
    );
    v.check(status == Some(QEMU_SUCCESS), &format!("aio boot: QEMU exit status {status:?} is the kernel's success"));
}
