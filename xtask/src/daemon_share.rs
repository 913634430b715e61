//! The storage daemons' share of the time in the whole-stack benchmark: what qbench measured (its
//! `daemon_run_pct`, `daemon_idle_pct` and `server_*_pct` lines, from the cycles each filesystem
//! server counts in its daemon and in all its work), as the line `cargo xtask bench qemu` prints,
//! and the plausibility check of `cargo xtask test`'s qbench-check boot.

use std::collections::BTreeMap;

use crate::harness::Verdicts;

/// Figures as `qbench::parse` reads them: (mount, metric) → value.
pub type Figures = BTreeMap<(String, String), f64>;

fn get(f: &Figures, mount: &str, metric: &str) -> Option<f64> {
    f.get(&(mount.to_string(), metric.to_string())).copied()
}

/// "0.12 % / 0.03 %" (WFS / FAT) for `metric`, or "–" where a figure is missing.
fn both(f: &Figures, metric: &str) -> String {
    match (get(f, "wfs", metric), get(f, "fat", metric)) {
        (Some(w), Some(a)) => format!("{w:.2} % / {a:.2} %"),
        _ => "–".into(),
    }
}

/// The report lines: the daemon's share of elapsed time during each mount's run and during the
/// idle period after both, with the whole server's (requests and daemon) for scale.
pub fn lines(f: &Figures) -> Vec<String> {
    let idle = get(f, "all", "idle_s").map(|s| format!("{s:.0} s")).unwrap_or_else(|| "–".into());
    vec![
        format!(
            "Storage daemon's share of elapsed time (TSC cycles in its background calls, I/O waits included), WFS / FAT: \
             during the qbench run {}, idle ({idle} with no workload) {}",
            both(f, "daemon_run_pct"),
            both(f, "daemon_idle_pct")
        ),
        format!(
            "Whole filesystem server's share (requests and daemon), WFS / FAT: during the run {}, idle {}",
            both(f, "server_run_pct"),
            both(f, "server_idle_pct")
        ),
    ]
}

/// Prints [`lines`] after a blank line.
pub fn print(f: &Figures) {
    println!();
    for line in lines(f) {
        println!("{line}");
    }
}

/// The qbench-check boot's verdict on the shares ([`plausible`]).
pub fn check(f: &Figures, v: &mut Verdicts) {
    let shares = plausible(f);
    v.check(
        shares.is_ok(),
        &format!(
            "qbench-check: the daemons' and servers' shares of the run and idle time are percentages ({shares:?})"
        ),
    );
}

/// Whether every daemon share is present and a share (0–100 %, never more than its server's):
/// `Err` names the first that is not.
pub fn plausible(f: &Figures) -> Result<(), String> {
    for mount in ["wfs", "fat"] {
        for when in ["run", "idle"] {
            let daemon = get(f, mount, &format!("daemon_{when}_pct"));
            let server = get(f, mount, &format!("server_{when}_pct"));
            match (daemon, server) {
                (Some(d), Some(s)) if (0.0..=100.0).contains(&d) && d <= s + 1e-9 && s <= 100.0 => {}
                other => return Err(format!("{mount} {when}: daemon and server shares {other:?}")),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qbench::parse;

    const LOG: &str = "QBENCH wfs daemon_run_pct 0.2500\nQBENCH wfs server_run_pct 31.0000\n\
        QBENCH fat daemon_run_pct 0.1000\nQBENCH fat server_run_pct 12.5000\n\
        QBENCH wfs daemon_idle_pct 0.0400\nQBENCH wfs server_idle_pct 0.0500\n\
        QBENCH fat daemon_idle_pct 0.0100\nQBENCH fat server_idle_pct 0.0100\nQBENCH all idle_s 3.000\n";

    #[test]
    fn the_daemon_line_shows_run_and_idle_shares_per_mount() {
        let f = parse(LOG);
        let l = lines(&f);
        assert!(l[0].contains("during the qbench run 0.25 % / 0.10 %"), "{}", l[0]);
        assert!(l[0].contains("idle (3 s with no workload) 0.04 % / 0.01 %"), "{}", l[0]);
        assert!(l[1].contains("during the run 31.00 % / 12.50 %, idle 0.05 % / 0.01 %"), "{}", l[1]);
        assert_eq!(plausible(&f), Ok(()));
    }

    #[test]
    fn missing_or_impossible_shares_are_reported() {
        let partial = parse("QBENCH wfs daemon_run_pct 0.2\n");
        assert!(lines(&partial)[0].contains("run –, idle (– with no workload) –"), "{}", lines(&partial)[0]);
        assert!(plausible(&partial).unwrap_err().contains("wfs run"));
        let over = parse(&LOG.replace("fat daemon_idle_pct 0.0100", "fat daemon_idle_pct 0.5000"));
        assert!(plausible(&over).unwrap_err().contains("fat idle"), "a daemon busier than its server");
    }
}
