//! Model-based random test: a file driven through random writes, reads, seeks and truncations
//! against a `Vec<u8>` model, with vfs restarts (and WFS server restarts) injected between and in
//! the middle of calls. Reads must always match the model; a write that reports `ServerRestarted`
//! is retried by the "application" at the same position, which must leave the file equal to the
//! model whether or not the first attempt landed.

mod common;

use common::*;
use watos_fs::{ErrorKind, File, OpenOptions, SeekFrom};

use prng::XorShift64 as Rng;

fn write_retrying(f: &mut File<protocol::local::LocalIpc>, at: u64, data: &[u8]) {
    f.seek(SeekFrom::Start(at)).unwrap();
    let mut done = 0;
    while done < data.len() {
        match f.write(&data[done..]) {
            Ok(n) => done += n,
            // Outcome unknown: the position did not move, so writing the same bytes again is right.
            Err(e) if e.kind() == ErrorKind::ServerRestarted => {}
            Err(e) => panic!("write: {e}"),
        }
    }
}

/// fsync after a vfs restart that found unsynced changes reports `ServerRestarted` once (the new vfs
/// cannot vouch for them); here no filesystem server restarted since, so they are intact and the
/// next fsync makes them durable.
fn sync(f: &File<protocol::local::LocalIpc>) {
    match f.sync_all() {
        Err(e) if e.kind() == ErrorKind::ServerRestarted => f.sync_all().unwrap(),
        r => r.unwrap(),
    }
}

fn run(seed: u64, steps: usize) {
    let (s, fs) = stack();
    let mut rng = Rng(seed);
    for (m, fs_server) in [("", Some("wfs")), ("/fat", None), ("/mem", None)] {
        let path = format!("{m}/model");
        let mut f = OpenOptions::new().read(true).write(true).create(true).open(&fs, &path).unwrap();
        let mut model: Vec<u8> = Vec::new();
        for step in 0..steps {
            match rng.below(10) {
                0..=3 => {
                    let at = rng.below(model.len() as u64 + 5000);
                    let len = 1 + rng.below(20_000) as usize;
                    let data: Vec<u8> = (0..len).map(|i| (i as u64 ^ step as u64 ^ seed) as u8).collect();
                    if rng.below(4) == 0 {
                        // The restart happens while the vfs handles the write (or the seek before it):
                        // the app's first delivered call always goes to the vfs (a later one may be
                        // the vfs's own call to a filesystem, which this in-memory model cannot
                        // interrupt).
                        let _hook = restart_vfs_during_call(&s, 1);
                        write_retrying(&mut f, at, &data);
                    } else {
                        write_retrying(&mut f, at, &data);
                    }
                    let end = at as usize + len;
                    if model.len() < end {
                        model.resize(end, 0);
                    }
                    model[at as usize..end].copy_from_slice(&data);
                }
                4..=6 => {
                    let at = rng.below(model.len() as u64 + 100);
                    let len = rng.below(30_000) as usize;
                    let mut buf = vec![0u8; len];
                    f.seek(SeekFrom::Start(at)).unwrap();
                    let n = {
                        let _hook = (rng.below(3) == 0).then(|| restart_vfs_during_call(&s, 1));
                        f.read(&mut buf).unwrap()
                    };
                    let start = (at as usize).min(model.len());
                    let want = &model[start..(start + len).min(model.len())];
                    assert_eq!(&buf[..n], &want[..n], "{m} step {step}: read at {at}");
                    assert!(n == want.len() || n > 0, "{m} step {step}: short read of nothing");
                }
                7 => {
                    let size = rng.below(model.len() as u64 + 3000);
                    loop {
                        match f.set_len(size) {
                            Ok(()) => break,
                            Err(e) if e.kind() == ErrorKind::ServerRestarted => {}
                            Err(e) => panic!("set_len: {e}"),
                        }
                    }
                    model.resize(size as usize, 0);
                }
                8 => {
                    assert_eq!(f.seek(SeekFrom::End(0)).unwrap(), model.len() as u64, "{m} step {step}");
                    assert_eq!(f.metadata().unwrap().len(), model.len() as u64);
                }
                _ => {
                    s.restart("vfs").unwrap();
                    if let Some(server) = fs_server.filter(|_| rng.below(2) == 0) {
                        sync(&f);
                        s.restart(server).unwrap();
                    }
                }
            }
        }
        sync(&f);
        assert_eq!(fs.read(&path).unwrap(), model, "{m}: final contents");
    }
}

#[test]
fn random_file_ops_with_restarts_match_the_model() {
    for seed in 1..=3 {
        run((seed as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15), 120);
    }
}

/// Longer: more seeds and steps (`cargo test -p watos-fs --test model -- --ignored`).
#[test]
#[ignore]
fn random_file_ops_with_restarts_match_the_model_long() {
    for seed in 1..=40 {
        run((seed as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15), 400);
    }
}
