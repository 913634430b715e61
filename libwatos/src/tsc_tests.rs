//! The TSC's rate from two readings, and the counter itself (RDTSC runs on the host as in WATOS).

use super::*;

#[test]
fn the_first_reading_is_the_reference_and_later_ones_give_the_rate() {
    let r = Reference::new();
    assert_eq!(r.rate(1_000, 5_000), 0, "no interval yet");
    assert_eq!(r.rate(1_000 + 3_000_000_000, 5_000 + 1_000_000_000), 3_000_000_000);
    assert_eq!(r.rate(1_000 + 1_500, 5_000 + 1_000), 1_500_000_000, "every later call measures from the first");
    assert_eq!(r.rate(2_000_000, 5_000), 0, "no time passed: no rate, never a division by zero");
    assert_eq!(r.rate(0, 10_000), 0, "a counter behind the reference counts as no cycles");
}

#[test]
fn a_reference_taken_at_zero_time_is_kept_by_its_ticks() {
    let r = Reference::default();
    assert_eq!(r.rate(500, 0), 0);
    assert_eq!(r.rate(500 + 2_000, 1_000), 2_000_000_000, "the reference (500, 0) stood");
}

#[test]
fn the_counter_moves_forward() {
    let mut tsc = Tsc;
    let a = now();
    let spin: u64 = (0..10_000u64).fold(0, |acc, i| acc.wrapping_add(std::hint::black_box(i)));
    let b = tsc.now();
    assert!(spin > 0 && b > a, "TSC {a} then {b}");
}
