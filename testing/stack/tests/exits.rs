//! Process deaths reported by the supervisor (`process_exited`, what init does under WATOS) against
//! a vfs server that was restarted, and against one that is dead: the first closes what the dead
//! process held on the new server, the second is an error at once, never a wait.

mod common;

use common::*;
use protocol::api::vfs::OpenFlags as O;
use protocol::Error;

#[test]
fn a_restarted_vfs_server_takes_death_reports() {
    let (s, app) = stack();
    put(&app.vfs, "/mem/f", b"x").unwrap();
    let before = s.app("before").unwrap();
    before.vfs.open("/mem/f", O::READ, 0).unwrap();
    s.restart("vfs").unwrap();
    // The old server's descriptors died with it: the new one has nothing of that process.
    assert_eq!(s.crash_app(&before), Ok(0));
    let app = s.app("app-after-restart").unwrap();
    let after = s.app("after").unwrap();
    for dir in ["/mem/f", "/a", "/fat/b"] {
        if dir != "/mem/f" {
            put(&app.vfs, dir, b"y").unwrap();
        }
        after.vfs.open(dir, O::READ, 0).unwrap();
    }
    after.vfs.begin("/").unwrap();
    assert_eq!(app.vfs.begin("/"), Err(Error::Busy), "one explicit transaction at a time");
    assert_eq!(app.vfs.stats().unwrap().open_files, 3);
    assert_eq!(s.crash_app(&after), Ok(3));
    assert_eq!(app.vfs.stats().unwrap().open_files, 0);
    assert_eq!(app.vfs.stats().unwrap().tx_aborts, 1);
    // WFS holds one explicit transaction at a time: a new one proves the dead process's was aborted.
    let mine = app.vfs.begin("/").unwrap();
    app.vfs.abort(mine).unwrap();
}

#[test]
fn a_dead_vfs_server_makes_a_death_report_fail_at_once() {
    let (s, _app) = stack();
    let victim = s.app("victim").unwrap();
    s.ipc.kill(s.id("vfs").unwrap().index).unwrap();
    let r = s.crash_app(&victim);
    assert!(matches!(r, Err(Error::ServerDead | Error::NotFound)), "{r:?}");
}
