//! Scheduling decisions: which task runs next, and when sleepers wake.
//!
//! Design: plain round-robin over the task table's slots with one time slice for everyone; a task
//! is `Runnable`, `Sleeping` until a monotonic time in ns (checked at each timer tick), or `Blocked`
//! (in IPC, on a notification or on console input). The kernel asks these pure functions and does the switching itself, so the policy is tested on the host.

/// The scheduler's view of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedState {
    /// Empty slot or a task that finished.
    Free,
    Runnable,
    /// Not runnable until the monotonic clock (ns) reaches this value.
    Sleeping {
        until: u64,
    },
    /// Waiting on something other than time: an IPC partner, a notification or console input.
    Blocked,
}

/// Makes every sleeper whose deadline is `<= now` runnable; returns how many woke.
pub fn wake_sleepers(states: &mut [SchedState], now: u64) -> usize {
    let mut woke = 0;
    for s in states.iter_mut() {
        if let SchedState::Sleeping { until } = *s {
            if until <= now {
                *s = SchedState::Runnable;
                woke += 1;
            }
        }
    }
    woke
}

/// The next runnable slot after `current` (wrapping, `current` itself last), or `None` to idle.
pub fn pick_next(states: &[SchedState], current: Option<usize>) -> Option<usize> {
    let n = states.len();
    if n == 0 {
        return None;
    }
    let start = current.map_or(0, |c| (c + 1) % n);
    (0..n).map(|k| (start + k) % n).find(|&i| states[i] == SchedState::Runnable)
}

/// The earliest sleeper deadline, so an idle CPU knows there is something to wait for.
pub fn next_deadline(states: &[SchedState]) -> Option<u64> {
    states
        .iter()
        .filter_map(|s| match s {
            SchedState::Sleeping { until } => Some(*until),
            _ => None,
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::SchedState::*;
    use super::*;

    #[test]
    fn round_robin_rotates_and_skips_non_runnable() {
        let s = [Runnable, Free, Runnable, Sleeping { until: 5 }, Runnable];
        assert_eq!(pick_next(&s, None), Some(0));
        assert_eq!(pick_next(&s, Some(0)), Some(2));
        assert_eq!(pick_next(&s, Some(2)), Some(4));
        assert_eq!(pick_next(&s, Some(4)), Some(0));
    }

    #[test]
    fn current_runs_again_only_if_alone() {
        let s = [Free, Runnable, Blocked];
        assert_eq!(pick_next(&s, Some(1)), Some(1));
        assert_eq!(pick_next(&[Free, Blocked], Some(0)), None);
        assert_eq!(pick_next(&[], None), None);
    }

    #[test]
    fn sleepers_wake_at_their_deadline_not_before() {
        let mut s = [Sleeping { until: 10 }, Sleeping { until: 20 }, Runnable];
        assert_eq!(next_deadline(&s), Some(10));
        assert_eq!(wake_sleepers(&mut s, 9), 0);
        assert_eq!(wake_sleepers(&mut s, 10), 1);
        assert_eq!(s[0], Runnable);
        assert_eq!(next_deadline(&s), Some(20));
        assert_eq!(wake_sleepers(&mut s, 100), 1);
        assert_eq!(next_deadline(&s), None);
    }

    #[test]
    fn every_runnable_task_gets_a_turn_within_n_picks() {
        let s = [Runnable, Blocked, Runnable, Runnable, Free, Runnable];
        let mut seen = [false; 6];
        let mut cur = None;
        for _ in 0..s.len() {
            cur = pick_next(&s, cur);
            seen[cur.unwrap()] = true;
        }
        for (i, st) in s.iter().enumerate() {
            assert_eq!(seen[i], *st == Runnable);
        }
    }
}
