//! Server restarts under the stress client's loop (rewrite, set_len, fsync, read back by path): a
//! restart lands inside any call, of any server on the file's path (one restarting while another
//! starts up included), and every fsync that returned Ok must read back exactly.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use common::*;
use prng::XorShift64;
use watos_fs::{ErrorKind, OpenOptions, SeekFrom};

#[test]
fn every_fsync_that_returned_ok_reads_back_exactly_under_random_restarts() {
    let mut failures = Vec::new();
    let mounts = [("/fat", ["vfs", "fat", "fat-cache"]), ("", ["vfs", "wfs", "wfs-cache"])];
    for (seed, (mount, servers)) in (1..=400u64).zip(mounts.iter().cycle()) {
        let (s, fs) = stack();
        let victims: Vec<u16> = servers.iter().map(|n| s.id(n).unwrap().index).collect();
        let rng = Rc::new(RefCell::new(XorShift64::new(seed)));
        let depth = Rc::new(Cell::new(0u32));
        let log = Rc::new(RefCell::new(Vec::<String>::new()));
        let ipc = s.ipc.clone();
        {
            let (rng, depth, log, victims) = (rng.clone(), depth.clone(), log.clone(), victims.clone());
            s.ipc.set_call_hook(Some(Rc::new(move |_| {
                if depth.get() >= 2 || rng.borrow_mut().below(12) != 0 {
                    return;
                }
                depth.set(depth.get() + 1);
                let v = victims[rng.borrow_mut().below(victims.len() as u64) as usize];
                log.borrow_mut().push(format!("    restart {v} (depth {})", depth.get()));
                let r = ipc.restart(v);
                log.borrow_mut().push(format!("    restart {v} -> {r:?}"));
                depth.set(depth.get() - 1);
            })));
        }
        let path = &format!("{mount}/client.bin");
        let mut file = None;
        for round in 0..60u64 {
            if file.is_none() {
                match OpenOptions::new().read(true).write(true).create(true).open(&fs, path) {
                    Ok(f) => file = Some(f),
                    Err(_) => continue,
                }
            }
            let f = file.as_mut().unwrap();
            let data = pattern(3000 + (round as usize * 131) % 9000, seed * 1000 + round);
            log.borrow_mut().push(format!("round {round}: {} bytes", data.len()));
            let step = |what: &str| log.borrow_mut().push(format!("  {what}"));
            let wrote = f
                .seek(SeekFrom::Start(0))
                .and_then(|_| {
                    step("write_all");
                    f.write_all(&data)
                })
                .and_then(|_| {
                    step("set_len");
                    f.set_len(data.len() as u64)
                })
                .and_then(|_| {
                    step("sync_all");
                    f.sync_all()
                });
            if let Err(e) = wrote {
                log.borrow_mut().push(format!("  write failed: {:?}", e.kind()));
                continue;
            }
            log.borrow_mut().push("  fsynced".into());
            step("read back");
            if let Ok(back) = fs.read(path) {
                if back != data {
                    failures.push(format!(
                        "seed {seed} round {round}: read back {} bytes, fsynced {}\n{}",
                        back.len(),
                        data.len(),
                        log.borrow().iter().rev().take(30).rev().cloned().collect::<Vec<_>>().join("\n")
                    ));
                    break;
                }
            }
        }
        s.ipc.set_call_hook(None);
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn an_fsync_after_a_vfs_restart_with_unsynced_writes_reports_it_once() {
    let (s, fs) = stack();
    for m in MOUNTS {
        let path = format!("{m}/x");
        let mut f = OpenOptions::new().read(true).write(true).create(true).open(&fs, &path).unwrap();
        f.write_all(b"hello").unwrap();
        s.restart("vfs").unwrap();
        let e = f.sync_all().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ServerRestarted, "{m}: the new vfs cannot vouch for the write");
        f.sync_all().unwrap();
        // Nothing unsynced: a vfs restart before an fsync is transparent.
        s.restart("vfs").unwrap();
        f.sync_all().unwrap();
        assert_eq!(fs.read(&path).unwrap(), b"hello", "{m}");
    }
}

#[test]
fn a_rename_through_a_vfs_that_restarted_is_not_vouched_for_by_the_next_fsync() {
    let (s, fs) = stack();
    for m in MOUNTS {
        let (old, new) = (format!("{m}/old"), format!("{m}/new"));
        fs.write(&old, b"bytes").unwrap();
        let f = OpenOptions::new().read(true).write(true).create(true).open(&fs, &format!("{m}/keep")).unwrap();
        f.sync_all().unwrap();
        fs.rename(&old, &new).unwrap();
        // The vfs that took the rename restarts (and with WFS, the filesystem server too, losing it):
        // the new vfs cannot tell, so the fsync must not answer Ok.
        s.restart("vfs").unwrap();
        if m.is_empty() {
            s.restart("wfs").unwrap();
        }
        let e = f.sync_all().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ServerRestarted, "{m}");
        f.sync_all().unwrap();
        if m.is_empty() {
            assert!(!fs.exists(&new).unwrap(), "the rename was lost with wfs-server");
            fs.rename(&old, &new).unwrap();
            f.sync_all().unwrap();
        }
        assert_eq!(fs.read(&new).unwrap(), b"bytes", "{m}");
    }
}
