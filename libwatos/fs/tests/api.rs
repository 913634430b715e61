//! Every file API on WFS, FAT and memfs through the whole stack, and the error kinds.

mod common;

use common::*;
use watos_fs::{ErrorKind, FileType, OpenOptions, SeekFrom};

#[test]
fn files_read_write_seek_truncate_on_every_mount() {
    let (_s, fs) = stack();
    for m in MOUNTS {
        let path = format!("{m}/data.bin");
        let data = pattern(300_000, 3);
        fs.write(&path, &data).unwrap();
        assert_eq!(fs.read(&path).unwrap(), data, "{path}");
        assert_eq!(fs.metadata(&path).unwrap().len(), 300_000);

        let mut f = OpenOptions::new().read(true).write(true).open(&fs, &path).unwrap();
        assert_eq!(f.seek(SeekFrom::Start(1000)).unwrap(), 1000);
        let mut buf = [0u8; 16];
        assert_eq!(f.read(&mut buf).unwrap(), 16);
        assert_eq!(&buf[..], &data[1000..1016]);
        assert_eq!(f.stream_position().unwrap(), 1016);
        assert_eq!(f.seek(SeekFrom::Current(-16)).unwrap(), 1000);
        f.write_all(b"HELLO").unwrap();
        assert_eq!(f.seek(SeekFrom::End(-5)).unwrap(), 299_995);
        f.write_all(b"WORLD!").unwrap();
        assert_eq!(f.metadata().unwrap().len(), 300_001);
        assert_eq!(f.seek(SeekFrom::Current(-1_000_000)).unwrap_err().kind(), ErrorKind::InvalidInput);
        f.set_len(2000).unwrap();
        f.sync_all().unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut all = Vec::new();
        assert_eq!(f.read_to_end(&mut all).unwrap(), 2000);
        let mut expect = data[..2000].to_vec();
        expect[1000..1005].copy_from_slice(b"HELLO");
        assert_eq!(all, expect, "{path}");
        drop(f);

        // Append always writes at the end; the position then reads as the end.
        let log = format!("{m}/log.txt");
        fs.write(&log, b"one\n").unwrap();
        let mut a = OpenOptions::new().append(true).read(true).open(&fs, &log).unwrap();
        a.write_all(b"two\n").unwrap();
        assert_eq!(a.stream_position().unwrap(), 8);
        a.write_all(b"three\n").unwrap();
        a.seek(SeekFrom::Start(4)).unwrap();
        let mut s = String::new();
        a.read_to_string(&mut s).unwrap();
        assert_eq!(s, "two\nthree\n");
        assert_eq!(fs.read_to_string(&log).unwrap(), "one\ntwo\nthree\n");

        // create_new refuses an existing name; create truncates.
        let e = OpenOptions::new().write(true).create_new(true).open(&fs, &log).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        fs.create(&log).unwrap();
        assert!(fs.metadata(&log).unwrap().is_empty());
    }
}

#[test]
fn directories_listing_copy_rename_remove_on_every_mount() {
    let (_s, fs) = stack();
    for m in MOUNTS {
        let top = format!("{m}/a");
        fs.create_dir_all(&format!("{top}/b/c")).unwrap();
        fs.create_dir_all(&format!("{top}/b/c")).unwrap();
        fs.write(&format!("{top}/f1.txt"), b"first").unwrap();
        fs.create_dir(&format!("{top}/d")).unwrap();
        assert_eq!(names(&fs, &top), ["b", "d", "f1.txt"], "{m}");
        for e in fs.read_dir(&format!("{top}/")).unwrap() {
            let e = e.unwrap();
            assert_eq!(e.path(), format!("{top}/{}", e.file_name()));
            let md = e.metadata().unwrap();
            assert_eq!(md.file_type(), e.file_type());
            assert_eq!(md.is_dir(), e.file_name() != "f1.txt");
        }
        assert_eq!(fs.copy(&format!("{top}/f1.txt"), &format!("{top}/d/copy.txt")).unwrap(), 5);
        fs.rename(&format!("{top}/d/copy.txt"), &format!("{top}/b/moved.txt")).unwrap();
        assert_eq!(fs.read(&format!("{top}/b/moved.txt")).unwrap(), b"first");
        assert!(!fs.exists(&format!("{top}/d/copy.txt")).unwrap());
        // A big file is copied whole.
        let big = pattern(200_000, 5);
        fs.write(&format!("{top}/big"), &big).unwrap();
        fs.copy(&format!("{top}/big"), &format!("{top}/big2")).unwrap();
        assert_eq!(fs.read(&format!("{top}/big2")).unwrap(), big);

        assert_eq!(fs.remove_dir(&format!("{top}/b")).unwrap_err().kind(), ErrorKind::DirectoryNotEmpty);
        fs.remove_file(&format!("{top}/b/moved.txt")).unwrap();
        fs.remove_dir(&format!("{top}/b/c")).unwrap();
        fs.remove_dir(&format!("{top}/b")).unwrap();
        assert_eq!(names(&fs, &top), ["big", "big2", "d", "f1.txt"]);
        let st = fs.statfs(&top).unwrap();
        assert!(st.total_blocks > 0 && st.free_blocks <= st.total_blocks, "{m}: {st:?}");
    }
    // The root lists the mount points too.
    let root = names(&fs, "/");
    assert!(root.contains(&"fat".to_string()) && root.contains(&"mem".to_string()), "{root:?}");
}

#[test]
fn listing_a_big_directory_crosses_pages() {
    let (_s, fs) = stack();
    fs.create_dir("/many").unwrap();
    for i in 0..300 {
        fs.write(&format!("/many/file-with-a-longish-name-{i:04}"), b"").unwrap();
    }
    let got = names(&fs, "/many");
    assert_eq!(got.len(), 300);
    assert_eq!(got[299], "file-with-a-longish-name-0299");
}

#[test]
fn errors_have_familiar_kinds_and_keep_the_server_detail() {
    let (_s, fs) = stack();
    let e = fs.open("/nope").err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.server_error(), Some(protocol::Error::NotFound));
    assert_eq!(e.to_string(), "not found");
    assert_eq!(fs.read_dir("/nope").err().unwrap().kind(), ErrorKind::NotFound);
    fs.create_dir("/d").unwrap();
    assert_eq!(fs.create_dir("/d").unwrap_err().kind(), ErrorKind::AlreadyExists);
    fs.write("/d/f", b"x").unwrap();
    assert_eq!(fs.create_dir_all("/d/f/g").unwrap_err().kind(), ErrorKind::NotADirectory);
    assert_eq!(fs.remove_file("/d").unwrap_err().kind(), ErrorKind::IsADirectory);
    assert_eq!(fs.read_dir("/d/f").err().unwrap().kind(), ErrorKind::NotADirectory);
    assert_eq!(fs.copy("/d", "/e").unwrap_err().kind(), ErrorKind::IsADirectory);
    assert_eq!(fs.rename("/d/f", "/fat/f").unwrap_err().kind(), ErrorKind::CrossesDevices);
    // Options std rejects: no access mode, create without write.
    assert_eq!(OpenOptions::new().open(&fs, "/d/f").err().unwrap().kind(), ErrorKind::InvalidInput);
    assert_eq!(
        OpenOptions::new().read(true).create(true).open(&fs, "/d/f").err().unwrap().kind(),
        ErrorKind::InvalidInput
    );
    // Writing a read-only descriptor.
    let mut f = fs.open("/d/f").unwrap();
    assert_eq!(f.write(b"no").unwrap_err().kind(), ErrorKind::BadDescriptor);
    // Bad UTF-8 is InvalidData without server detail.
    fs.write("/bin", &[0xff, 0xfe]).unwrap();
    let e = fs.read_to_string("/bin").unwrap_err();
    assert_eq!((e.kind(), e.server_error()), (ErrorKind::InvalidData, None));
    assert_eq!(fs.metadata("relative").unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(fs.create_dir_all("relative/x").unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(fs.metadata("/d").unwrap().file_type(), FileType::Directory);
}

#[test]
fn dropping_files_closes_their_descriptors() {
    let (_s, fs) = stack();
    fs.write("/f", b"data").unwrap();
    let before = fs.vfs_stats().unwrap().open_files;
    let files: Vec<_> = (0..20).map(|_| fs.open("/f").unwrap()).collect();
    assert_eq!(fs.vfs_stats().unwrap().open_files, before + 20);
    drop(files);
    assert_eq!(fs.vfs_stats().unwrap().open_files, before);
    // Far more opens than the 1024-descriptor table holds, one at a time: none leaks.
    for _ in 0..1100 {
        fs.open("/f").unwrap();
    }
    assert_eq!(fs.vfs_stats().unwrap().open_files, before);
}
