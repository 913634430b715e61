//! qbench: the whole storage stack measured from an application (app -> vfs-server -> wfs-server or
//! fat-server -> blockcache0/1 -> virtio-blk), for `cargo xtask bench qemu`.
//!
//! Design: one program, two roles by its initrd name. `qbench` runs the benchmark [`BENCH`] on WFS
//! (`/`) and then FAT (`/fat`) and prints `QBENCH <mount> <metric> <value>` lines that xtask turns
//! into a table; `qbench-check` runs the same code on a tiny plan ([`CHECK`]) that compares every
//! byte read with what was written, for `cargo xtask test`. Either way each phase prints a `CHECK`
//! line for its data, and at the end the program stops the servers (vfs, then the filesystem
//! servers, which stop their caches) so the kernel halts and QEMU exits. Around each mount's run and
//! over an idle period after both, it asks the filesystem servers for their daemon reports and
//! prints the daemon's and the whole server's share of that time (`daemon_run_pct`,
//! `daemon_idle_pct`, `server_*_pct`), from the cycles the server loop counts.
//!
//! The block caches hold 8 MiB each (blockcache-server), so "cold" means a file eight times that
//! size read from its start (each block was evicted long before it is read again), and "warm" a
//! 4 MiB file just written and fsynced, read once untimed and then four times timed in 1 MiB requests
//! (every block cached), as linux-fs-ref's fsbench.c does. There is no call to drop the cache. The
//! sizes, request sizes and counts are fsbench.c's, so `cargo xtask bench qemu` compares like for like.
#![no_std]
#![no_main]

extern crate alloc;

mod clock;
mod data;
mod work;

use libwatos::fs::Result;
use libwatos::protocol::api::blockcache::Client as CacheClient;
use libwatos::protocol::api::filesystem::Client as FsClient;
use libwatos::protocol::daemon::DaemonStats;
use libwatos::transport::KernelTransport;
use libwatos::{println, service};

use clock::Rng;
use data::{Content, BLOCK};
use work::Mount;

libwatos::entry!(main);

/// Sizes and counts of one run.
pub struct Plan {
    /// The large ("cold") file, bytes.
    pub big: u64,
    /// The small ("warm") file, bytes; well under the 8 MiB cache.
    pub warm: u64,
    pub warm_passes: u32,
    pub rand_warmup: usize,
    pub rand_ops: usize,
    pub uncached_ops: usize,
    pub batch_rounds: usize,
    /// Reads per batch (at most the vfs's `MAX_BATCH`, 64; 64 x 4 KiB stays under `MAX_IO`).
    pub batch: usize,
    /// Compare every byte read (check mode) instead of each block's stamp.
    pub whole: bool,
    pub ipc_calls: usize,
}

/// The benchmark: a 64 MiB file (8x the cache) and a 4 MiB one.
const BENCH: Plan = Plan {
    big: 64 << 20,
    warm: 4 << 20,
    warm_passes: 4,
    rand_warmup: 200,
    rand_ops: 2000,
    uncached_ops: 500,
    batch_rounds: 15,
    batch: libwatos::protocol::api::vfs::MAX_BATCH,
    whole: false,
    ipc_calls: 500,
};

/// The correctness check: small, lengths not a multiple of any block, every byte compared.
/// Small enough that the boot stays cheap in a debug build under TCG, where one 4 KiB read through
/// the stack takes milliseconds.
const CHECK: Plan = Plan {
    big: (256 << 10) + 12_345,
    warm: (32 << 10) + 77,
    warm_passes: 1,
    rand_warmup: 2,
    rand_ops: 8,
    uncached_ops: 8,
    batch_rounds: 1,
    batch: 8,
    whole: true,
    ipc_calls: 2,
};

/// Blocks of the hot region of the hot/cold mix (2 MiB) and the share of reads that go there.
const HOT_BLOCKS: u64 = 512;
const HOT_PERCENT: u64 = 90;

const BIG: &str = "qbench-big.dat";
const WARM: &str = "qbench-warm.dat";

fn run(m: &Mount, rng: &mut Rng) -> Result<()> {
    let p = m.plan;
    let (big_blocks, warm_blocks) = (p.big / BLOCK as u64, p.warm / BLOCK as u64);
    m.seq_write(BIG, p.big, "seq_write")?;
    m.seq_read(BIG, p.big, 0, 1, "seq_read_cold")?;
    m.seq_write(WARM, p.warm, "warm_write")?;
    m.seq_read(WARM, p.warm, 1, p.warm_passes, "seq_read_warm")?;
    m.random(WARM, p.rand_warmup, p.rand_ops, "rand_cached", || rng.below(warm_blocks))?;
    // The same reads through the vfs (app → vfs → filesystem server), for the direct path's gain.
    m.fs.set_direct_reads(false);
    let through_vfs = m.random(WARM, p.rand_warmup, p.rand_ops, "rand_cached_vfs", || rng.below(warm_blocks));
    m.fs.set_direct_reads(true);
    through_vfs?;
    let mut rng2 = Rng::new(rng.below(u64::MAX));
    m.random(BIG, 0, p.uncached_ops, "rand_uncached", || rng2.below(big_blocks))?;
    let mut rng3 = Rng::new(rng.below(u64::MAX));
    let mut hotcold =
        || if rng3.below(100) < HOT_PERCENT { rng3.below(HOT_BLOCKS.min(big_blocks)) } else { rng3.below(big_blocks) };
    m.random(BIG, p.rand_warmup * 2, p.rand_ops, "hotcold", &mut hotcold)?;
    m.batch(WARM, warm_blocks, p.batch_rounds, false, "batch_cached", rng)?;
    m.batch(BIG, big_blocks, p.batch_rounds, true, "batch_uncached", rng)?;
    m.round_trips(p.ipc_calls);
    Ok(())
}

/// How long the idle period after the runs lasts, in which only the daemons work (ns).
const IDLE_NS: u64 = 3_000_000_000;
const CHECK_IDLE_NS: u64 = 500_000_000;

/// The daemon report of the filesystem server `server`, with its cycle counts (None if it cannot
/// be asked).
fn daemon(server: &str) -> Option<DaemonStats> {
    let t = KernelTransport::new();
    let id = t.lookup(server).ok()?;
    FsClient::new(t, id).daemon_stats().ok()
}

/// Prints the daemon's and the whole server's share of the time between two reports as
/// `QBENCH <tag> daemon_<when>_pct` and `server_<when>_pct`.
fn report_shares(tag: &str, when: &str, before: Option<DaemonStats>, after: Option<DaemonStats>) {
    match (before, after) {
        (Some(b), Some(a)) if a.elapsed_cycles > b.elapsed_cycles => {
            println!("QBENCH {tag} daemon_{when}_pct {:.4}", a.daemon_pct_since(&b));
            println!("QBENCH {tag} server_{when}_pct {:.4}", a.busy_pct_since(&b));
        }
        _ => println!("qbench: {tag}: no daemon cycle counts for the {when} period"),
    }
}

fn main() -> i64 {
    let check_mode = service::own_name() == "qbench-check";
    let plan = if check_mode { &CHECK } else { &BENCH };
    let fs = match libwatos::fs() {
        Ok(fs) => fs,
        Err(e) => {
            println!("qbench: no vfs-server: {e:?}");
            return 1;
        }
    };
    // Wait until the vfs answers: the servers mount while this program starts.
    let mut up = false;
    for _ in 0..500 {
        if fs.metadata("/fat").is_ok() {
            up = true;
            break;
        }
        libwatos::sys::sleep_ns(10_000_000);
    }
    if !up {
        println!("qbench: the vfs never showed /fat");
    }
    let began = clock::Stamp::now();
    clock::mark();
    if !check_mode {
        clock::per_byte_costs(9);
    }
    println!("QBENCH all big_mib {:.3}", plan.big as f64 / (1 << 20) as f64);
    println!("QBENCH all warm_mib {:.3}", plan.warm as f64 / (1 << 20) as f64);
    let mut failed = !up;
    for (i, (tag, dir, server, cache)) in
        [("wfs", "/", "wfs-server", "blockcache0"), ("fat", "/fat/", "fat-server", "blockcache1")]
            .into_iter()
            .enumerate()
    {
        let t = KernelTransport::new();
        let ids = (t.lookup(cache), service::find(cache), service::find("vfs-server"), service::find(server));
        let (Ok(id), Ok(cache_task), Ok(vfs), Ok(fs_id)) = ids else {
            println!("qbench: {cache}, vfs-server or {server} is not running");
            failed = true;
            continue;
        };
        let tasks = [libwatos::sys::task_id(), vfs, fs_id, cache_task];
        let m = Mount {
            fs: &fs,
            tag,
            dir,
            cache: CacheClient::new(t, id),
            plan,
            content: Content::new(0x9b3e_c4a1 + i as u64),
            tasks,
        };
        let mut rng = Rng::new(0x51ed_0000 + i as u64);
        let before = daemon(server);
        if let Err(e) = run(&m, &mut rng) {
            libwatos::fmt::check(false, format_args!("qbench: {tag}: the run stopped with {e:?}"));
            failed = true;
        }
        report_shares(tag, "run", before, daemon(server));
        // The random reads (a seek and a read each) went straight to the filesystem server.
        let direct = libwatos::protocol::api::filesystem::Client::new(
            KernelTransport::new(),
            libwatos::transport::from_kernel(fs_id),
        )
        .direct_stats();
        failed |= !libwatos::fmt::check(
            direct.is_ok_and(|d| d.reads > 0),
            format_args!("qbench-direct: {tag}: {server} served reads directly ({direct:?})"),
        );
        clock::mark();
    }
    // Nothing but the daemons (and their write-back of the runs' last changes) for a while.
    let servers = [("wfs", "wfs-server"), ("fat", "fat-server")];
    let before = servers.map(|(_, s)| daemon(s));
    let idle = if check_mode { CHECK_IDLE_NS } else { IDLE_NS };
    libwatos::sys::sleep_ns(idle);
    for ((tag, server), b) in servers.into_iter().zip(before) {
        report_shares(tag, "idle", b, daemon(server));
    }
    println!("QBENCH all idle_s {:.3}", idle as f64 / 1e9);
    println!("QBENCH all kernel_tsc_mhz {:.3}", began.kernel_rate());
    println!("qbench: {}", if failed { "finished with errors" } else { "done" });
    for server in ["vfs-server", "wfs-server", "fat-server"] {
        service::stop(server);
    }
    failed as i64
}
