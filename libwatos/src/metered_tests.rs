//! The metered server's own answers beyond the counts: a `daemon_stats` request with leases it does
//! not take is refused like any other malformed call (and still counted), and the filesystem stays
//! the caller's to use and to take back.

use super::tests::{fat, Stepping};
use super::*;
use protocol::ipc::{Lease, Leases, TaskId};

#[test]
fn daemon_stats_with_leases_it_does_not_take_is_refused_and_counted() {
    let mut m = Metered::new(FsServer::new(fat()), Stepping::default());
    let mut msg = [0u8; 16];
    let n = protocol::idl::encode_request(&mut msg, VERSION, m.daemon_stats, &()).unwrap();
    let (a, b) = ([1u8; 4], [2u8; 4]);
    let mut lent = [Lease::Read(&a), Lease::Read(&b)];
    let mut reply = [0u8; 64];
    let len = m.handle(&msg[..n], &mut Incoming::new(TaskId::new(1, 0), &mut Leases::new(&mut lent)), &mut reply);
    assert_eq!(protocol::idl::reply_error(&reply[..len.unwrap()]), Some(protocol::Error::InvalidArgument));
    // Readings: 100 at the start, 200 and 300 around the request (a refusal reads no clock of its own).
    let mut want = CpuMeter::new(100);
    want.request(100);
    assert_eq!(m.meter, want, "a refused request is busy time too");
}

#[test]
fn the_filesystem_is_reachable_through_the_meter_and_given_back() {
    use protocol::fs::{FileType, NewNode};
    let mut m = Metered::new(FsServer::new(fat()), Stepping::default());
    let root = m.fs().root();
    m.fs().create(root, "made", &NewNode::new(FileType::File, 0o644)).unwrap();
    let mut fs = m.into_fs();
    let names: Vec<String> = fs.readdir(root, 0, 16).unwrap().into_iter().map(|e| e.name).collect();
    assert!(
        names.iter().any(|n| n.eq_ignore_ascii_case("made")),
        "what was made through the meter is there: {names:?}"
    );
}
