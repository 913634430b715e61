//! Unit tests of the fault-injecting device and the crash-state builders.

use alloc::vec;
use alloc::vec::Vec;

use super::crash::{reordered_states, replay};
use super::*;
use crate::RamDisk;

fn sector(byte: u8) -> Vec<u8> {
    vec![byte; SECTOR_SIZE]
}

fn disk(sectors: u64) -> FaultDisk<RamDisk> {
    FaultDisk::new(RamDisk::new(sectors))
}

#[test]
fn records_writes_and_flushes_in_order() {
    let mut d = disk(8);
    d.write(1, &sector(1)).unwrap();
    d.flush().unwrap();
    d.write(2, &[2u8; 1024]).unwrap();
    assert_eq!(
        d.log(),
        &[Op::Write { sector: 1, data: sector(1) }, Op::Flush, Op::Write { sector: 2, data: vec![2u8; 1024] },]
    );
    assert_eq!(d.writes(), 2);
    d.clear_log();
    assert!(d.log().is_empty());
    assert_eq!(d.writes(), 2, "clearing the log does not reset the write count");
    assert_eq!(d.inner().as_bytes()[1024..2048], [2u8; 1024]);
}

#[test]
fn rejected_requests_are_not_logged() {
    let mut d = disk(4);
    assert_eq!(d.write(4, &sector(1)), Err(Error::InvalidArgument));
    assert_eq!(d.write(0, &[0u8; 100]), Err(Error::InvalidArgument));
    assert!(d.log().is_empty());
    assert_eq!(d.writes(), 0);
}

#[test]
fn power_cut_after_n_writes() {
    let mut d = disk(8);
    d.write(0, &sector(1)).unwrap();
    d.fail_after_writes(Some(2));
    assert!(!d.power_cut());
    d.write(1, &sector(2)).unwrap();
    d.flush().unwrap();
    d.write(2, &sector(3)).unwrap();
    assert!(d.power_cut());
    assert_eq!(d.write(3, &sector(4)), Err(Error::Io { offset: 3 * 512 }));
    assert_eq!(d.flush(), Err(Error::Io { offset: 0 }));
    assert_eq!(d.writes(), 3);
    assert_eq!(d.log().len(), 4, "failed ops are not logged");
    assert_eq!(d.inner().as_bytes()[3 * 512], 0, "the failed write changed nothing");
    // Restoring power lets I/O continue.
    d.fail_after_writes(None);
    d.write(3, &sector(4)).unwrap();
    d.flush().unwrap();
}

#[test]
fn power_cut_at_zero_fails_immediately() {
    let mut d = disk(2);
    d.fail_after_writes(Some(0));
    assert!(d.write(0, &sector(1)).is_err());
    assert!(d.flush().is_err());
    assert!(d.log().is_empty());
}

#[test]
fn vectored_write_counts_each_run_and_cuts_between_runs() {
    let mut d = disk(8);
    d.fail_after_writes(Some(2));
    let a = sector(1);
    let b = sector(2);
    let c = sector(3);
    let runs: [(u64, &[u8]); 3] = [(0, &a), (4, &b), (6, &c)];
    assert_eq!(d.write_vectored(&runs), Err(Error::Io { offset: 6 * 512 }));
    assert_eq!(d.writes(), 2);
    assert_eq!(d.log().len(), 2);
    assert_eq!(d.inner().as_bytes()[0], 1);
    assert_eq!(d.inner().as_bytes()[4 * 512], 2);
    assert_eq!(d.inner().as_bytes()[6 * 512], 0);
    assert_eq!(d.counters().write_calls, 1, "the allowed runs went down as one request");
}

#[test]
fn vectored_write_validates_every_run_first() {
    let mut d = disk(4);
    let a = sector(1);
    let runs: [(u64, &[u8]); 2] = [(0, &a), (9, &a)];
    assert_eq!(d.write_vectored(&runs), Err(Error::InvalidArgument));
    assert!(d.log().is_empty());
    assert_eq!(d.inner().as_bytes()[0], 0);
}

#[test]
fn failing_reads_only_where_asked() {
    let mut d = disk(16);
    d.fail_reads(4..6);
    let mut buf = [0u8; 1024];
    d.read(2, &mut buf).unwrap();
    assert_eq!(d.read(3, &mut buf), Err(Error::Io { offset: 4 * 512 }));
    assert_eq!(d.read(5, &mut buf), Err(Error::Io { offset: 5 * 512 }));
    d.read(6, &mut buf).unwrap();
    let mut x = [0u8; 512];
    let mut y = [0u8; 512];
    let mut runs: [(u64, &mut [u8]); 2] = [(0, &mut x), (4, &mut y)];
    assert_eq!(d.read_vectored(&mut runs), Err(Error::Io { offset: 4 * 512 }));
    d.fail_reads(10..11);
    assert!(d.read(10, &mut x).is_err());
    d.heal_reads();
    d.read(4, &mut buf).unwrap();
    d.read(10, &mut x).unwrap();
}

#[test]
fn counters_count_requests_and_runs() {
    let mut d = disk(16);
    let mut x = [0u8; 512];
    let mut y = [0u8; 1024];
    let mut runs: [(u64, &mut [u8]); 2] = [(0, &mut x), (4, &mut y)];
    d.read_vectored(&mut runs).unwrap();
    d.read(9, &mut [0u8; 512]).unwrap();
    d.write(1, &sector(1)).unwrap();
    d.flush().unwrap();
    let c = d.counters();
    assert_eq!((c.read_calls, c.read_runs, c.sectors_read), (2, 3, 4));
    assert_eq!((c.write_calls, c.sectors_written, c.flushes), (1, 1, 1));
    d.reset_counters();
    assert_eq!(d.counters(), DeviceCounters::default());
}

#[test]
fn inner_access_and_into_inner() {
    let mut d = disk(2);
    d.inner_mut().as_bytes_mut()[0] = 42;
    let mut b = [0u8; 512];
    d.read(0, &mut b).unwrap();
    assert_eq!(b[0], 42);
    assert_eq!(d.into_inner().as_bytes()[0], 42);
}

#[test]
fn replay_rebuilds_every_prefix() {
    let base = vec![0u8; 4 * 512];
    let mut d = FaultDisk::new(RamDisk::from_bytes(base.clone()));
    d.write(0, &sector(1)).unwrap();
    d.write(0, &sector(2)).unwrap();
    d.flush().unwrap();
    d.write(3, &sector(3)).unwrap();
    let log = d.log().to_vec();
    assert_eq!(replay(&base, &log, 0), base);
    assert_eq!(replay(&base, &log, 1)[0], 1);
    assert_eq!(replay(&base, &log, 2)[0], 2);
    assert_eq!(replay(&base, &log, 3), replay(&base, &log, 2), "a flush changes no data");
    assert_eq!(replay(&base, &log, 4), d.inner().as_bytes());
    assert_eq!(replay(&base, &log, 99), d.inner().as_bytes(), "n past the end = whole log");
}

#[test]
fn replay_grows_a_short_base() {
    let log = [Op::Write { sector: 2, data: sector(7) }];
    let img = replay(&[], &log, 1);
    assert_eq!(img.len(), 3 * 512);
    assert_eq!(img[2 * 512], 7);
}

#[test]
fn reordered_states_enumerates_subsets_of_the_open_epoch() {
    let base = vec![0u8; 8 * 512];
    let log = vec![
        Op::Write { sector: 0, data: sector(1) },
        Op::Flush,
        Op::Write { sector: 1, data: sector(2) },
        Op::Write { sector: 2, data: sector(3) },
        Op::Write { sector: 3, data: sector(4) },
    ];
    let states = reordered_states(&base, &log, 5, 100, 1);
    assert_eq!(states.len(), 8, "three independent writes give 2^3 states");
    for s in &states {
        assert_eq!(s[0], 1, "the write before the flush is always durable");
    }
    assert_eq!(states[0], replay(&base, &log, 2), "first: none of the epoch landed");
    assert_eq!(states[1], replay(&base, &log, 5), "second: all of it landed");
    let mut seen: Vec<[u8; 3]> = states.iter().map(|s| [s[512], s[1024], s[1536]]).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 8);
    // Only the ops issued so far count: at n_ops = 3 the epoch holds one write.
    assert_eq!(reordered_states(&base, &log, 3, 100, 1).len(), 2);
    // Right after a flush there is exactly one state.
    assert_eq!(reordered_states(&base, &log, 2, 100, 1).len(), 1);
}

#[test]
fn reordered_states_respects_max_and_is_deterministic() {
    let base = vec![0u8; 32 * 512];
    let log: Vec<Op> = (0..12).map(|i| Op::Write { sector: i, data: sector(i as u8 + 1) }).collect();
    let a = reordered_states(&base, &log, 12, 10, 7);
    assert_eq!(a.len(), 10);
    assert_eq!(a, reordered_states(&base, &log, 12, 10, 7));
    assert_ne!(a, reordered_states(&base, &log, 12, 10, 8), "the seed picks the subsets");
    assert!(reordered_states(&base, &log, 12, 0, 7).is_empty());
}

#[test]
fn reordered_states_include_overwrites_landing_out_of_order() {
    // The same sector written twice in one epoch: a drive may persist the older data last.
    let base = vec![0u8; 2 * 512];
    let log = vec![Op::Write { sector: 0, data: sector(1) }, Op::Write { sector: 0, data: sector(2) }];
    let states = reordered_states(&base, &log, 2, 50, 3);
    let mut firsts: Vec<u8> = states.iter().map(|s| s[0]).collect();
    firsts.sort_unstable();
    assert_eq!(firsts, vec![0, 1, 2], "old, first write only (or reordered), newest");
}
