//! Direct-read grants (vfs `direct_read`): asked of the filesystem once per open-file description,
//! only for read access to a non-directory of the caller's own, revoked on the last close and on the
//! process's exit, forgotten when the filesystem server restarts.

mod common;

use common::*;
use protocol::api::grants::Grants;
use protocol::api::vfs::OpenFlags as O;
use protocol::Error;

#[test]
fn a_grant_is_made_on_demand_shared_by_dups_and_revoked_on_the_last_close() {
    let (mut v, fs) = setup();
    put(&mut v, "/f", b"hello");
    let ino = v.stat("/f").unwrap().ino;
    let fd = v.open(P1, "/f", O::READ, 0).unwrap();
    assert_eq!(fs.probe.grants.borrow().stats().grants, 0, "nothing granted before it is asked for");
    let g = v.direct_read(P1, fd).unwrap();
    assert_eq!(g.server, FS_SERVER);
    assert_eq!(fs.probe.grants.borrow_mut().node(P1, g.handle), Ok(ino), "granted to the caller, for its file");
    assert_eq!(fs.probe.grants.borrow_mut().node(P2, g.handle), Err(Error::PermissionDenied));
    let dup = v.dup(P1, fd).unwrap();
    assert_eq!(v.direct_read(P1, dup), Ok(g), "one grant per description");
    assert_eq!(v.direct_read(P1, fd), Ok(g), "asking again costs the server nothing");
    assert_eq!(fs.probe.grants.borrow().stats().grants, 1);
    v.close(P1, fd).unwrap();
    assert_eq!(fs.probe.grants.borrow_mut().node(P1, g.handle), Ok(ino), "a descriptor still holds it");
    v.close(P1, dup).unwrap();
    assert_eq!(fs.probe.grants.borrow_mut().node(P1, g.handle), Err(Error::BadFileDescriptor), "revoked");
    assert_eq!(fs.probe.grants.borrow().stats().live, 0);
}

#[test]
fn grants_need_read_access_to_a_file_of_the_callers_own() {
    let (mut v, fs) = setup();
    put(&mut v, "/f", b"x");
    v.mkdir("/d", 0o755).unwrap();
    let w = v.open(P1, "/f", O::WRITE, 0).unwrap();
    assert_eq!(v.direct_read(P1, w), Err(Error::BadFileDescriptor), "write-only");
    let d = v.open(P1, "/d", O::READ, 0).unwrap();
    assert_eq!(v.direct_read(P1, d), Err(Error::IsADirectory));
    let r = v.open(P1, "/f", O::READ, 0).unwrap();
    assert_eq!(v.direct_read(P2, r), Err(Error::BadFileDescriptor), "another process's descriptor");
    assert_eq!(v.direct_read(P1, 99), Err(Error::BadFileDescriptor));
    fs.probe.no_grants.set(true);
    assert_eq!(v.direct_read(P1, r), Err(Error::NotSupported), "a filesystem without grants says so");
    assert_eq!(fs.probe.grants.borrow().stats().grants, 0);
}

#[test]
fn a_process_exit_revokes_its_grants() {
    let (mut v, fs) = setup();
    put(&mut v, "/a", b"a");
    put(&mut v, "/b", b"b");
    let a = v.open(P1, "/a", O::READ, 0).unwrap();
    let b = v.open(P1, "/b", O::READ | O::WRITE, 0).unwrap();
    let other = v.open(P2, "/a", O::READ, 0).unwrap();
    let (ga, gb) = (v.direct_read(P1, a).unwrap(), v.direct_read(P1, b).unwrap());
    let go = v.direct_read(P2, other).unwrap();
    assert_ne!(ga.handle, go.handle, "each process gets its own grant");
    assert_eq!(v.exit(P1), Ok(2));
    let mut grants = fs.probe.grants.borrow_mut();
    assert_eq!(grants.node(P1, ga.handle), Err(Error::BadFileDescriptor));
    assert_eq!(grants.node(P1, gb.handle), Err(Error::BadFileDescriptor));
    assert!(grants.node(P2, go.handle).is_ok(), "another process keeps its grant");
    assert_eq!(grants.stats().live, 1);
}

#[test]
fn a_filesystem_restart_forgets_the_grants_and_the_next_ask_gets_a_new_one() {
    let (mut v, fs) = setup();
    put(&mut v, "/f", b"hello");
    let fd = v.open(P1, "/f", O::READ, 0).unwrap();
    let old = v.direct_read(P1, fd).unwrap();
    // The server restarts: a new instance knows no grants.
    let mut fresh = Grants::default();
    fresh.set_granter(Box::new(|t| t == VFS_TASK));
    *fs.probe.grants.borrow_mut() = fresh;
    fs.probe.generation.set(1);
    let mut buf = [0u8; 5];
    assert_eq!(v.pread(P1, fd, 0, &mut buf), Ok(5), "the vfs notices the restart on its next call");
    let new = v.direct_read(P1, fd).unwrap();
    assert!(fs.probe.grants.borrow_mut().node(P1, new.handle).is_ok(), "granted by the new instance");
    assert_eq!(fs.probe.grants.borrow().stats().grants, 1);
    v.close(P1, fd).unwrap();
    let s = fs.probe.grants.borrow().stats();
    assert_eq!((s.revokes, s.live), (1, 0), "the close revoked the new grant, not {old:?}");
}
