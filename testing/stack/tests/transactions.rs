//! Two client processes and one explicit transaction, through the whole stack (app -> vfs server ->
//! wfs server -> cache server): the other process's changes on the transaction's mount are refused
//! (`Busy`) instead of joining it, its fsync there fails instead of answering Ok without a barrier,
//! the other mount is unaffected, and once the owner dies (its transaction aborted) the other
//! process writes and fsyncs again.

mod common;

use common::*;
use protocol::api::vfs::OpenFlags as O;
use protocol::Error;

#[test]
fn a_second_process_neither_joins_nor_falsely_syncs_during_a_transaction() {
    let (s, b) = stack();
    let a = s.app("tx-owner").unwrap();
    let fd = b.vfs.open("/b.txt", O::WRITE | O::CREATE, 0o644).unwrap();
    assert_eq!(b.vfs.write(fd, b"before"), Ok(6));
    assert_eq!(b.vfs.fsync(fd), Ok(()));
    a.vfs.begin("/").unwrap();
    put(&a.vfs, "/in-tx.txt", b"owner").unwrap();
    assert_eq!(b.vfs.write(fd, b"during"), Err(Error::Busy));
    assert_eq!(put(&b.vfs, "/other.txt", b"x"), Err(Error::Busy));
    assert_eq!(b.vfs.mkdir("/dir", 0o755), Err(Error::Busy));
    assert_eq!(b.vfs.fsync(fd), Err(Error::Busy), "no Ok without a barrier");
    // Reads go on (committed data), and FAT is another mount.
    assert_eq!(get(&b.vfs, "/b.txt").unwrap(), b"before");
    put(&b.vfs, "/fat/free.txt", b"fat").unwrap();
    // The owner dies: its transaction is aborted, and only its change vanishes.
    assert_eq!(s.crash_app(&a), Ok(0));
    assert_eq!(get(&b.vfs, "/in-tx.txt"), Err(Error::NotFound));
    assert_eq!(b.vfs.write(fd, b"after"), Ok(5));
    assert_eq!(b.vfs.fsync(fd), Ok(()));
    assert_eq!(get(&b.vfs, "/b.txt").unwrap(), b"beforeafter");
    assert_eq!(get(&b.vfs, "/fat/free.txt").unwrap(), b"fat");
}
