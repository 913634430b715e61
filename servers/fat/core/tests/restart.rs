//! Node ids across a server restart: ids handed out by one mount must resolve on a fresh mount
//! (the vfs re-opens open files by id), and ids that do not name a live short entry must be
//! `NotFound`, even on images whose directories form a cycle.

mod common;

use blockdev::RamDisk;
use common::*;
use fat::{FatFs, FatType};
use protocol::fs::{FileSystem, FileType, NodeId};
use protocol::Error;

const TYPES: [(FatType, u64); 3] =
    [(FatType::Fat12, 4 * 2048), (FatType::Fat16, 20 * 2048), (FatType::Fat32, 40 * 2048)];

fn restart(fs: FatFs<RamDisk>) -> FatFs<RamDisk> {
    let dev = fs.unmount().unwrap();
    FatFs::mount(dev, clock()).unwrap()
}

/// A tree with files in the root, in a deep directory, and in a directory big enough to span
/// several clusters; returns (id, expected contents) of every file and the deep directory's id.
fn populate(fs: &mut FatFs<RamDisk>) -> (Vec<(NodeId, Vec<u8>)>, NodeId) {
    let root = fs.root();
    let mut files = Vec::new();
    let f = file(fs, root, "in the root.txt");
    fs.write(f, 0, b"root file").unwrap();
    files.push((f, b"root file".to_vec()));
    let mut dir = root;
    for depth in 0..6 {
        let _sibling = mkdir(fs, dir, &format!("sibling {depth}"));
        dir = mkdir(fs, dir, &format!("level {depth} with a long name"));
    }
    let deep = file(fs, dir, "deep.bin");
    fs.write(deep, 0, &data(5000, 7)).unwrap();
    files.push((deep, data(5000, 7)));
    let wide = mkdir(fs, root, "wide");
    for i in 0..60 {
        let f = file(fs, wide, &format!("a rather long file name number {i}"));
        fs.write(f, 0, &data(i, i as u64)).unwrap();
        files.push((f, data(i, i as u64)));
    }
    (files, dir)
}

#[test]
fn ids_resolve_after_a_fresh_mount() {
    for (kind, sectors) in TYPES {
        let mut fs = format(kind, sectors, None);
        let (files, deep_dir) = populate(&mut fs);
        let mut fs = restart(fs);
        for (id, want) in &files {
            assert_eq!(read_all(&mut fs, *id), *want, "{kind:?} id {id}");
        }
        // A directory id works too, and its listing gives back the same file ids.
        assert_eq!(fs.getattr(deep_dir).unwrap().kind, FileType::Directory);
        let listed = fs.readdir(deep_dir, 0, 10).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(Some(listed[0].ino), files.get(1).map(|f| f.0), "{kind:?}");
        // Each id in a new mount, resolved first thing (nothing cached but the root).
        for (id, want) in files.iter().rev().step_by(7) {
            let mut fs = FatFs::mount(fs_dev_copy(&mut fs), clock()).unwrap();
            assert_eq!(read_all(&mut fs, *id), *want, "{kind:?} alone id {id}");
        }
        // The ids are still the ones a path lookup gives.
        assert_eq!(walk(&mut fs, "/in the root.txt").unwrap(), files[0].0);
        let _ = fs.unmount().unwrap();
    }
}

/// A copy of the volume as committed, for a fresh mount beside the running one.
fn fs_dev_copy(fs: &mut FatFs<RamDisk>) -> RamDisk {
    fs.sync().unwrap();
    RamDisk::from_bytes(fs.device().as_bytes().to_vec())
}

#[test]
fn ids_that_name_no_live_entry_are_not_found() {
    for (kind, sectors) in TYPES {
        let mut fs = format(kind, sectors, None);
        let root = fs.root();
        let dir = mkdir(&mut fs, root, "directory");
        let long = file(&mut fs, dir, "a long name that needs slots");
        let gone = file(&mut fs, dir, "deleted");
        fs.unlink(dir, "deleted").unwrap();
        // File data that looks exactly like directory entries: an id pointing into it must not
        // be taken for an entry.
        let mut fake = Vec::new();
        for i in 0..16u8 {
            let mut e = [0u8; 32];
            e[..11].copy_from_slice(b"FAKE       ");
            e[0] = b'A' + i;
            e[11] = 0x20;
            fake.extend_from_slice(&e);
        }
        let impostor = file(&mut fs, root, "impostor");
        fs.write(impostor, 0, &fake).unwrap();
        let size = fs.device().as_bytes().len() as u64;
        let fs = restart(fs);
        let data_at = fs.device().as_bytes().windows(32).position(|w| w == &fake[32..64]).unwrap() as u64;
        let free_cluster = fs.geometry().cluster_offset(fs.geometry().clusters) / 32;
        let mut fs = restart(fs);
        let bad = [
            ("long-name slot", long - 1),
            ("deleted entry", gone),
            ("file data", data_at / 32),
            ("free cluster", free_cluster),
            ("past the end", size / 32 + 3),
            ("boot sector", 0),
            ("spare id", 1 << 62),
        ];
        for (what, id) in bad {
            assert_eq!(fs.getattr(id).err(), Some(Error::NotFound), "{kind:?} {what} {id}");
        }
        // The live neighbours still resolve after all those misses.
        assert_eq!(fs.getattr(long).unwrap().kind, FileType::File);
        assert_eq!(read_all(&mut fs, impostor), fake);
        let _ = fs.unmount().unwrap();
    }
}

#[test]
fn dot_entries_and_cycles_are_not_followed() {
    for (kind, sectors) in TYPES {
        let mut fs = format(kind, sectors, None);
        let root = fs.root();
        let a = mkdir(&mut fs, root, "a");
        let b = mkdir(&mut fs, a, "b");
        let kept = file(&mut fs, a, "kept");
        fs.write(kept, 0, b"still here").unwrap();
        let mut dev = fs.unmount().unwrap();
        let bytes = dev.as_bytes_mut();
        // `b`'s entry is at byte b*32: point it at `a`'s first cluster, making a -> b -> a ...
        let (ea, eb) = (a as usize * 32, b as usize * 32);
        let cluster_of_a: [u8; 4] = [bytes[ea + 26], bytes[ea + 27], bytes[ea + 20], bytes[ea + 21]];
        bytes[eb + 26] = cluster_of_a[0];
        bytes[eb + 27] = cluster_of_a[1];
        bytes[eb + 20] = cluster_of_a[2];
        bytes[eb + 21] = cluster_of_a[3];
        // The `.` entry of `a` sits at the start of its first cluster.
        let lo = u16::from_le_bytes([cluster_of_a[0], cluster_of_a[1]]) as u32;
        let hi = u16::from_le_bytes([cluster_of_a[2], cluster_of_a[3]]) as u32;
        let mut fs = FatFs::mount(dev, clock()).unwrap();
        let dot = fs.geometry().cluster_offset(hi << 16 | lo) / 32;
        let mut fresh = FatFs::mount(fs_dev_copy(&mut fs), clock()).unwrap();
        assert_eq!(fresh.getattr(dot).err(), Some(Error::NotFound), "{kind:?} dot");
        assert_eq!(fresh.getattr(dot + 1).err(), Some(Error::NotFound), "{kind:?} dotdot");
        // An id in an allocated directory cluster that no live entry uses: the walk must end.
        assert_eq!(fresh.getattr(dot + 20).err(), Some(Error::NotFound), "{kind:?} empty slot");
        assert_eq!(read_all(&mut fs, kept), b"still here");
    }
}
