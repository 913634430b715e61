//! The transaction client's rule: a transaction's files are all visible or none is.
//!
//! Design: every round the client writes a new version (same round) of each of its files inside one
//! transaction, then commits or aborts it. Afterwards it reads the files outside any transaction and
//! names the round each holds ([`Held`]). What may be seen depends on how the round ended
//! ([`Ending`]): after a successful commit every file holds the new round; after an abort, a failure
//! before commit, or a commit refused for sure (`Conflict`, `NoSuchTransaction`: rolled back)
//! every file still holds the round committed before; after a commit whose outcome is unknown (the
//! reply lost with a restarted vfs or a dead filesystem server) the files hold one or the other,
//! but all the same.

/// The round a transaction file holds; `None` while it does not exist.
pub type Held = Option<u32>;

/// How a round's transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Committed,
    /// Aborted, failed before commit, or commit refused and rolled back.
    NotCommitted,
    /// Commit sent, outcome unknown.
    Unknown,
}

/// Whether `seen` (one entry per file) is allowed after round `this` ended with `ending`, when the
/// files held `before` at the start of the round (`None` when the last check could not read them:
/// then only "all the same" is required of what the round did not commit).
pub fn allowed(ending: Ending, before: Option<Held>, this: u32, seen: &[Held]) -> bool {
    let all = |h: Held| seen.iter().all(|&s| s == h);
    let as_before = || before.map_or_else(|| seen.first().is_none_or(|&h| all(h)), all);
    match ending {
        Ending::Committed => all(Some(this)),
        Ending::NotCommitted => as_before(),
        Ending::Unknown => as_before() || all(Some(this)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_or_none() {
        let (before, this) = (Some(Some(4)), 5);
        assert!(allowed(Ending::Committed, before, this, &[Some(5); 3]));
        assert!(!allowed(Ending::Committed, before, this, &[Some(4); 3]));
        assert!(!allowed(Ending::Committed, before, this, &[Some(5), Some(5), Some(4)]));
        assert!(allowed(Ending::NotCommitted, before, this, &[Some(4); 3]));
        assert!(!allowed(Ending::NotCommitted, before, this, &[Some(5); 3]));
        assert!(allowed(Ending::NotCommitted, Some(None), 0, &[None; 3]));
        assert!(!allowed(Ending::NotCommitted, Some(None), 0, &[None, Some(0), None]));
        // Not known before: consistency is all that is left to require of an uncommitted round.
        assert!(allowed(Ending::NotCommitted, None, this, &[Some(2); 3]));
        assert!(!allowed(Ending::NotCommitted, None, this, &[Some(2), None, Some(2)]));
        assert!(!allowed(Ending::Committed, None, this, &[Some(2); 3]));
        assert!(allowed(Ending::Unknown, before, this, &[Some(4); 3]));
        assert!(allowed(Ending::Unknown, before, this, &[Some(5); 3]));
        assert!(!allowed(Ending::Unknown, before, this, &[Some(5), Some(4), Some(5)]));
    }
}
