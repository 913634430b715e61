//! Two client processes and one explicit transaction, through the whole stack (app -> vfs server ->
//! wfs server -> cache server): the other process goes on working on the transaction's mount
//! outside it, neither sees the other's uncommitted changes, its fsync is durable (a power cut
//! then shows its data and nothing of the transaction), the commit merges both, a conflicting
//! change fails the commit cleanly, and the owner's death takes back only the owner's changes.

mod common;

use common::*;
use protocol::api::vfs::OpenFlags as O;
use protocol::Error;

/// The contents of `path` on a mounted image (what a power cut left).
fn durable(fs: &mut wfs::Wfs<blockdev::RamDisk>, path: &str) -> Option<Vec<u8>> {
    test_support::dump(fs).get(path).map(|e| e.1.clone())
}

#[test]
fn two_processes_are_isolated_and_the_commit_merges_them() {
    let (s, b) = stack();
    let a = s.app("tx-owner").unwrap();
    let fd = b.vfs.open("/b.txt", O::WRITE | O::CREATE, 0o644).unwrap();
    assert_eq!(b.vfs.write(fd, b"before"), Ok(6));
    assert_eq!(b.vfs.fsync(fd), Ok(()));
    let tx = a.vfs.begin("/").unwrap();
    put(&a.vfs, "/in-tx.txt", b"owner").unwrap();
    a.vfs.mkdir("/a-dir", 0o755).unwrap();
    let afd = a.vfs.open("/in-tx.txt", O::READ | O::WRITE, 0).unwrap();
    assert_eq!(a.vfs.fsync(afd), Err(Error::Busy), "nothing of the transaction is durable before its commit");
    // B writes, creates and syncs on the same mount, outside the transaction.
    assert_eq!(b.vfs.write(fd, b"during"), Ok(6));
    put(&b.vfs, "/other.txt", b"x").unwrap();
    assert_eq!(b.vfs.fsync(fd), Ok(()));
    assert_eq!(b.vfs.stat("/in-tx.txt"), Err(Error::NotFound), "B does not see A's uncommitted file");
    assert_eq!(a.vfs.stat("/other.txt"), Err(Error::NotFound), "A sees the state it began from");
    assert_eq!(get(&a.vfs, "/b.txt").unwrap(), b"before");
    // A power cut now: B's fsynced data is there, nothing of A's transaction.
    let mut cut = s.durable_wfs().unwrap();
    assert!(cut.fsck(false).unwrap().is_clean());
    assert_eq!(durable(&mut cut, "/b.txt"), Some(b"beforeduring".to_vec()));
    assert_eq!(durable(&mut cut, "/in-tx.txt"), None);
    a.vfs.close(afd).unwrap();
    a.vfs.commit(tx).unwrap();
    for c in [&a, &b] {
        assert_eq!(get(&c.vfs, "/in-tx.txt").unwrap(), b"owner");
        assert_eq!(get(&c.vfs, "/other.txt").unwrap(), b"x");
        assert_eq!(get(&c.vfs, "/b.txt").unwrap(), b"beforeduring");
        assert!(c.vfs.stat("/a-dir").is_ok());
    }
    let mut cut = s.durable_wfs().unwrap();
    assert!(cut.fsck(false).unwrap().is_clean());
    assert_eq!(durable(&mut cut, "/in-tx.txt"), Some(b"owner".to_vec()));
}

#[test]
fn a_conflict_fails_the_commit_and_the_owners_death_aborts_only_its_changes() {
    let (s, b) = stack();
    let a = s.app("tx-owner").unwrap();
    put(&b.vfs, "/shared.txt", b"base").unwrap();
    // Both change the same file: the second committer loses.
    let tx = a.vfs.begin("/").unwrap();
    put(&a.vfs, "/shared.txt", b"A").unwrap();
    put(&a.vfs, "/a-only.txt", b"a").unwrap();
    put(&b.vfs, "/shared.txt", b"B").unwrap();
    assert_eq!(a.vfs.commit(tx), Err(Error::Conflict));
    assert_eq!(get(&a.vfs, "/shared.txt").unwrap(), b"B");
    assert_eq!(a.vfs.stat("/a-only.txt"), Err(Error::NotFound), "nothing of the failed transaction");
    // The owner dies with a transaction open: only its changes vanish.
    a.vfs.begin("/").unwrap();
    put(&a.vfs, "/doomed.txt", b"d").unwrap();
    put(&b.vfs, "/survivor.txt", b"s").unwrap();
    assert_eq!(s.crash_app(&a), Ok(0));
    assert_eq!(b.vfs.stat("/doomed.txt"), Err(Error::NotFound));
    assert_eq!(get(&b.vfs, "/survivor.txt").unwrap(), b"s");
    let f = b.vfs.open("/survivor.txt", O::WRITE, 0).unwrap();
    b.vfs.fsync(f).unwrap();
    b.vfs.close(f).unwrap();
    let mut cut = s.durable_wfs().unwrap();
    assert!(cut.fsck(false).unwrap().is_clean());
    assert_eq!(durable(&mut cut, "/survivor.txt"), Some(b"s".to_vec()));
    // FAT has no transactions.
    assert_eq!(b.vfs.begin("/fat"), Err(Error::NotSupported));
}

#[test]
fn a_transaction_lost_with_a_restarted_wfs_server_never_reaches_the_next_one() {
    let (s, b) = stack();
    let a = s.app("tx-owner").unwrap();
    let tx = a.vfs.begin("/").unwrap();
    put(&a.vfs, "/a-lost.txt", b"gone with the server").unwrap();
    s.restart("wfs").unwrap();
    // B's first call meets the restart; then B begins a transaction on the new server, whose id
    // may well equal A's old one there.
    let _ = b.vfs.stat("/");
    let btx = b.vfs.begin("/").unwrap();
    put(&b.vfs, "/b-tx.txt", b"b").unwrap();
    // A's calls on that mount fail; none of them lands in B's transaction.
    assert_eq!(put(&a.vfs, "/a-late.txt", b"late"), Err(Error::NoSuchTransaction));
    assert_eq!(a.vfs.commit(tx), Err(Error::NoSuchTransaction));
    b.vfs.commit(btx).unwrap();
    assert_eq!(get(&b.vfs, "/b-tx.txt").unwrap(), b"b");
    for gone in ["/a-lost.txt", "/a-late.txt"] {
        assert_eq!(b.vfs.stat(gone), Err(Error::NotFound), "{gone}");
    }
    // A works again outside any transaction.
    put(&a.vfs, "/a-after.txt", b"after").unwrap();
    assert_eq!(get(&b.vfs, "/a-after.txt").unwrap(), b"after");
}

#[test]
fn a_transaction_left_open_by_a_restarted_vfs_is_aborted_and_another_can_begin() {
    let (s, b) = stack();
    let a = s.app("tx-owner").unwrap();
    let tx = a.vfs.begin("/").unwrap();
    put(&a.vfs, "/a-orphan.txt", b"never committed").unwrap();
    s.restart("vfs").unwrap();
    // The new vfs cannot name A's transaction; wfs-server drops it at the new vfs's first call, so
    // B can begin one (it answered Busy for as long as the orphan stayed open).
    // B's first call meets the vfs restart.
    let _ = b.vfs.stat("/");
    let btx = b.vfs.begin("/").unwrap();
    put(&b.vfs, "/b-tx.txt", b"b").unwrap();
    b.vfs.commit(btx).unwrap();
    assert_eq!(get(&b.vfs, "/b-tx.txt").unwrap(), b"b");
    assert_eq!(b.vfs.stat("/a-orphan.txt"), Err(Error::NotFound), "the orphan's change went with it");
    assert!(a.vfs.commit(tx).is_err(), "A's transaction is gone");
    let mut fs = s.durable_wfs().unwrap();
    assert_eq!(durable(&mut fs, "/b-tx.txt").as_deref(), Some(&b"b"[..]));
    assert_eq!(durable(&mut fs, "/a-orphan.txt"), None);
    assert!(fs.fsck(false).unwrap().is_clean());
}
