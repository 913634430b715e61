//! The lines `stats` prints for latencies, errors and the storage daemons.
//!
//! Design: pure functions from the servers' replies to text, so the WATOS binary and the library's
//! `stats` print the same format and host tests pin it down (the QEMU test parses these lines).
//! Latencies are shown in microseconds, converted from the server's ticks with the tick rate the
//! server measured (TSC cycles over the kernel's monotonic nanoseconds); a server that does not
//! know its rate gets its figures in ticks.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use protocol::daemon::DaemonStats;
use protocol::latency::{ticks_to_ns, LatencySummary};
use protocol::Error;

/// `<who> latency <kind>: N calls, min X us, mean X us, p50 X us, p99 X us, max X us` (or `ticks`
/// instead of `us` when `hz` is 0).
pub fn latency_line(who: &str, kind: &str, l: &LatencySummary, hz: u64) -> String {
    let (unit, show): (&str, &dyn Fn(u64) -> String) = if hz == 0 {
        ("ticks", &|t| format!("{t}"))
    } else {
        ("us", &|t| {
            let ns = ticks_to_ns(t, hz);
            format!("{}.{}", ns / 1000, ns % 1000 / 100)
        })
    };
    format!(
        "{who} latency {kind}: {} calls, min {} {unit}, mean {} {unit}, p50 {} {unit}, p99 {} {unit}, max {} {unit}",
        l.count,
        show(l.min),
        show(l.mean),
        show(l.p50),
        show(l.p99),
        show(l.max)
    )
}

/// `<who> errors by kind: NotFound 7, Busy 1` (`none` when there were none).
pub fn errors_line(who: &str, errors: &[(Error, u64)]) -> String {
    let list: Vec<String> = errors.iter().map(|(e, n)| format!("{} {n}", e.name())).collect();
    let list = if list.is_empty() { String::from("none") } else { list.join(", ") };
    format!("{who} errors by kind: {list}")
}

/// The two daemon lines of a filesystem server `who`: its schedule and progress (with the age of the
/// last flush, `now_ns` being the wall clock), then its CPU share from the server loop's cycles.
pub fn daemon_lines(who: &str, d: &DaemonStats, now_ns: i128) -> [String; 2] {
    let last = match d.last_flush {
        Some(t) => format!("{} ms ago", (now_ns - (t.secs as i128 * 1_000_000_000 + t.nanos as i128)) / 1_000_000),
        None => String::from("never"),
    };
    let progress = format!(
        "{who} daemon: flush age {} ms, {} ticks ({} us), {} flushes ({} failed), last flush {last}, {}; scrub {} blocks, {} passes, at object {}, {} bad; {} files compacted",
        d.flush_age_ms,
        d.ticks,
        d.busy_ns / 1000,
        d.flushes,
        d.flush_errors,
        if d.pending { "changes pending" } else { "nothing pending" },
        d.scrub_blocks,
        d.scrub_passes,
        d.scrub_position,
        d.scrub_bad,
        d.files_compacted
    );
    let since_start = DaemonStats::default();
    let elapsed = match d.tick_hz {
        0 => format!("{} cycles", d.elapsed_cycles),
        hz => {
            let ms = ticks_to_ns(d.elapsed_cycles, hz) / 1_000_000;
            format!("{}.{} s", ms / 1000, ms % 1000 / 100)
        }
    };
    let cpu = format!(
        "{who} daemon cpu: {} cycles, {:.3} % of {elapsed} since the server started; server busy {} cycles, {:.3} %",
        d.daemon_cycles,
        d.daemon_pct_since(&since_start),
        d.busy_cycles,
        d.busy_pct_since(&since_start)
    );
    [progress, cpu]
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::fs::Timespec;

    #[test]
    fn latencies_are_shown_in_microseconds_or_ticks() {
        let l = LatencySummary { count: 4, min: 3_000, mean: 4_500, p50: 4_000, p99: 9_000, max: 9_150 };
        assert_eq!(
            latency_line("vfs", "read", &l, 3_000_000_000),
            "vfs latency read: 4 calls, min 1.0 us, mean 1.5 us, p50 1.3 us, p99 3.0 us, max 3.0 us"
        );
        assert_eq!(
            latency_line("blockcache0 (/)", "flush", &l, 0),
            "blockcache0 (/) latency flush: 4 calls, min 3000 ticks, mean 4500 ticks, p50 4000 ticks, p99 9000 ticks, max 9150 ticks"
        );
    }

    #[test]
    fn errors_are_listed_by_name() {
        assert_eq!(errors_line("vfs", &[]), "vfs errors by kind: none");
        assert_eq!(
            errors_line("vfs", &[(Error::NotFound, 7), (Error::Io { offset: 0 }, 1)]),
            "vfs errors by kind: NotFound 7, Io 1"
        );
    }

    #[test]
    fn daemon_lines_show_progress_and_cpu_share() {
        let d = DaemonStats {
            flush_age_ms: 5000,
            ticks: 9,
            flushes: 2,
            last_flush: Some(Timespec::new(100, 0)),
            scrub_blocks: 64,
            scrub_position: 12,
            daemon_cycles: 3_000_000,
            busy_cycles: 30_000_000,
            elapsed_cycles: 3_000_000_000,
            tick_hz: 1_000_000_000,
            ..Default::default()
        };
        let [progress, cpu] = daemon_lines("wfs-server (/)", &d, 101_500_000_000);
        assert!(progress.starts_with("wfs-server (/) daemon: flush age 5000 ms, 9 ticks"), "{progress}");
        assert!(progress.contains("last flush 1500 ms ago") && progress.contains("at object 12"), "{progress}");
        assert_eq!(
            cpu,
            "wfs-server (/) daemon cpu: 3000000 cycles, 0.100 % of 3.0 s since the server started; server busy 30000000 cycles, 1.000 %"
        );
        let [never, unknown] = daemon_lines("fat-server (/fat)", &DaemonStats::default(), 0);
        assert!(never.contains("last flush never"), "{never}");
        assert!(unknown.contains("0.000 % of 0 cycles"), "{unknown}");
    }
}
