//! The application file API (watos-fs, through `libwatos::fs()`) on one mount: every operation an
//! app uses and the errors it must see, one `CHECK` line per property.
//!
//! Design: everything happens in a scratch directory `apitest` under the mount and is removed at the
//! end, so the test runs the same on fresh images and on the second boot. Errors are compared by
//! kind and by errno (what a POSIX program would see). WFS and FAT must give the same answers; the
//! harness counts the lines (13 per mount: xtask's `API_CHECKS`), so a property that silently did
//! not run fails.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use libwatos::fmt::check;
use libwatos::fs::{Error, ErrorKind, Fs, OpenOptions, Result, SeekFrom};
use libwatos::protocol::api::vfs::OpenFlags;
use libwatos::service::pattern;
use libwatos::transport::KernelTransport;

type Api = Fs<KernelTransport>;

/// The error kind and errno of a failed call; `None` if it succeeded.
fn failure<T>(r: &Result<T>) -> Option<(ErrorKind, i32)> {
    r.as_ref().err().map(|e: &Error| (e.kind(), e.errno()))
}

/// Reads exactly `n` bytes from the current position (fewer only at end of file).
fn read_n(f: &mut libwatos::fs::File<KernelTransport>, n: usize) -> Result<Vec<u8>> {
    let mut out = alloc::vec![0u8; n];
    let mut got = 0;
    while got < n {
        let k = f.read(&mut out[got..])?;
        if k == 0 {
            break;
        }
        got += k;
    }
    out.truncate(got);
    Ok(out)
}

fn sorted_names(fs: &Api, dir: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for e in fs.read_dir(dir)? {
        names.push(String::from(e?.file_name()));
    }
    names.sort();
    Ok(names)
}

/// Removes what an interrupted earlier run may have left.
fn clean(fs: &Api, d: &str) {
    for f in ["a.txt", "b.txt"] {
        let _ = fs.remove_file(&format!("{d}/{f}"));
    }
    let _ = fs.remove_dir(&format!("{d}/sub"));
    let _ = fs.remove_dir(d);
}

/// The file API tests on the mount at `mount` (`/` or `/fat/`), named `tag` in the lines.
pub fn run(fs: &Api, mount: &str, tag: &str, seed: u64) {
    let d = format!("{mount}apitest");
    let p = |name: &str| format!("{d}/{name}");
    clean(fs, &d);
    let made = fs.create_dir(&d);
    let again = fs.create_dir(&d);
    check(
        made.is_ok() && failure(&again) == Some((ErrorKind::AlreadyExists, 17)),
        format_args!("fstest: {tag} api: mkdir, then mkdir of the same name fails with EEXIST ({:?})", failure(&again)),
    );

    let data = pattern(seed, 10_000);
    let back = fs.write(&p("a.txt"), &data).and_then(|_| fs.read(&p("a.txt")));
    check(
        back.as_ref().is_ok_and(|b| *b == data),
        format_args!("fstest: {tag} api: create and write 10,000 bytes, read them back"),
    );

    let seeks = fs.open(&p("a.txt")).and_then(|mut f| {
        let start = (f.seek(SeekFrom::Start(5000))?, read_n(&mut f, 100)?);
        let current = (f.seek(SeekFrom::Current(-200))?, read_n(&mut f, 50)?);
        let end = (f.seek(SeekFrom::End(-10))?, read_n(&mut f, 100)?);
        let eof = read_n(&mut f, 10)?;
        let before_start = failure(&f.seek(SeekFrom::Current(-100_000)));
        Ok((start, current, end, eof, before_start))
    });
    check(
        seeks.as_ref().is_ok_and(|(s, c, e, eof, bad)| {
            *s == (5000, data[5000..5100].to_vec())
                && *c == (4900, data[4900..4950].to_vec())
                && *e == (9990, data[9990..].to_vec())
                && eof.is_empty()
                && *bad == Some((ErrorKind::InvalidInput, 22))
        }),
        format_args!("fstest: {tag} api: seek from start, current and end reads the right bytes; 0 at end of file; before the start is EINVAL"),
    );

    let mut want = data[..1000].to_vec();
    want.resize(3000, 0);
    let truncated = OpenOptions::new().write(true).open(fs, &p("a.txt")).and_then(|f| {
        f.set_len(1000)?;
        let short = fs.metadata(&p("a.txt"))?.len();
        f.set_len(3000)?;
        Ok((short, fs.read(&p("a.txt"))?))
    });
    check(
        truncated.as_ref().is_ok_and(|(short, bytes)| *short == 1000 && *bytes == want),
        format_args!("fstest: {tag} api: truncate to 1,000 bytes, then extend to 3,000 with zeros"),
    );

    let renamed =
        fs.rename(&p("a.txt"), &p("b.txt")).and_then(|_| Ok((fs.exists(&p("a.txt"))?, fs.read(&p("b.txt"))?)));
    check(
        renamed.as_ref().is_ok_and(|(old, bytes)| !*old && *bytes == want),
        format_args!("fstest: {tag} api: rename: the old name is gone, the new one has the bytes"),
    );

    let listed = fs.create_dir(&p("sub")).and_then(|_| sorted_names(fs, &d));
    check(
        listed.as_ref().is_ok_and(|n| *n == ["b.txt", "sub"]),
        format_args!("fstest: {tag} api: readdir lists exactly the file and the subdirectory ({listed:?})"),
    );

    let stats = fs.metadata(&p("b.txt")).and_then(|f| Ok((f, fs.metadata(&p("sub"))?, fs.metadata(&d)?)));
    check(
        stats.as_ref().is_ok_and(|(f, s, dir)| f.is_file() && f.len() == 3000 && s.is_dir() && dir.is_dir()),
        format_args!("fstest: {tag} api: stat gives kinds and sizes"),
    );

    let missing = [
        failure(&fs.open(&p("missing"))),
        failure(&fs.metadata(&p("missing"))),
        failure(&fs.remove_file(&p("missing"))),
    ];
    check(
        missing.iter().all(|f| *f == Some((ErrorKind::NotFound, 2))),
        format_args!("fstest: {tag} api: open, stat and unlink of a missing name fail with ENOENT ({missing:?})"),
    );

    let under_file = format!("{}/x", p("b.txt"));
    let notdir = [failure(&fs.open(&under_file)), failure(&fs.create_dir(&under_file))];
    check(
        notdir.iter().all(|f| *f == Some((ErrorKind::NotADirectory, 20))),
        format_args!("fstest: {tag} api: a file used as a directory fails with ENOTDIR ({notdir:?})"),
    );

    let isdir = [failure(&OpenOptions::new().write(true).open(fs, &p("sub"))), failure(&fs.remove_file(&p("sub")))];
    check(
        isdir.iter().all(|f| *f == Some((ErrorKind::IsADirectory, 21))),
        format_args!("fstest: {tag} api: writing or unlinking a directory fails with EISDIR ({isdir:?})"),
    );

    let notempty = failure(&fs.remove_dir(&d));
    check(
        notempty == Some((ErrorKind::DirectoryNotEmpty, 39)),
        format_args!("fstest: {tag} api: rmdir of a non-empty directory fails with ENOTEMPTY ({notempty:?})"),
    );

    // Descriptors are below the File layer: the raw vfs calls show EBADF.
    let vfs = fs.client();
    let bad = vfs.open(&p("b.txt"), OpenFlags::READ, 0).map(|fd| {
        let r = (vfs.write(fd, b"x"), vfs.read(999, &mut [0u8; 4]), vfs.close(999));
        let _ = vfs.close(fd);
        r
    });
    let ebadf = Err(libwatos::protocol::Error::BadFileDescriptor);
    check(
        bad.as_ref().is_ok_and(|(w, r, c)| *w == ebadf && *r == ebadf && *c == Err(libwatos::protocol::Error::BadFileDescriptor)),
        format_args!("fstest: {tag} api: writing a read-only descriptor, reading or closing one never opened fail with EBADF ({bad:?})"),
    );

    let removed = fs
        .remove_file(&p("b.txt"))
        .and_then(|_| fs.remove_dir(&p("sub")))
        .and_then(|_| fs.remove_dir(&d))
        .and_then(|_| fs.exists(&d));
    check(removed == Ok(false), format_args!("fstest: {tag} api: unlink and rmdir remove everything ({removed:?})"));
}
