//! FAT benchmark: the `fat` crate against rust-fatfs (`fatfs` 0.3) on identical in-memory images.
//!
//! Design: each image is made once by our formatter and cloned byte for byte for both
//! implementations. Two storage set-ups: RAM (our `RamDisk`, fatfs on a `Cursor<Vec<u8>>`), where
//! only filesystem CPU time counts, and an image file in the host page cache (ours through
//! pread/pwrite, fatfs through `fscommon::BufStream` as its documentation advises), where every
//! device request costs a system call, as every request to the block cache costs an IPC in WATOS.
//! Neither side fsyncs in the file set-up (rust-fatfs never does). Rows: sequential write and read of a 64 MiB file
//! in 1 MiB calls (write includes the final sync), 1,000 random 4 KiB reads inside it, and
//! creating then listing (after a remount, so cold) 1,000 long-named files in one directory.
//! Each figure is the best of three runs; ratios are fatfs time / our time.
#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use blockdev::{BlockDevice, RamDisk, SECTOR_SIZE};
use fat::{FatFs, FatType, FormatOptions};
use protocol::fs::{FileSystem, FileType, FixedClock, NewNode, Timespec};
use watos_bench::{mb_per_s, timed};

const FILE: usize = 64 << 20;
const CHUNK: usize = 1 << 20;
const RANDOM_READS: usize = 1000;
/// On image files rust-fatfs's re-walk of the chain costs two system calls per cluster on every
/// seek (minutes for 1,000 reads), so that set-up does fewer random reads.
const RANDOM_READS_FILE: usize = 100;
const FILES: usize = 1000;
/// rust-fatfs needs minutes for 1,000 creates on an image file, so that set-up makes 100.
const FILES_FILE: usize = 100;

struct Row {
    image: &'static str,
    what: String,
    ours: f64,
    theirs: f64,
    /// true: the numbers are MB/s (higher is better); false: seconds (lower is better).
    rate: bool,
}

/// An image file through pread/pwrite; `flush` does not fsync (see the module documentation).
struct HostFile {
    file: File,
    sectors: u64,
}

impl BlockDevice for HostFile {
    fn sector_count(&self) -> u64 {
        self.sectors
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> protocol::Result<()> {
        let off = blockdev::check_request(self.sectors, sector, buf.len())?;
        self.file.read_exact_at(buf, off).map_err(|_| protocol::Error::Io { offset: off })
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> protocol::Result<()> {
        let off = blockdev::check_request(self.sectors, sector, buf.len())?;
        self.file.write_all_at(buf, off).map_err(|_| protocol::Error::Io { offset: off })
    }
    fn flush(&mut self) -> protocol::Result<()> {
        Ok(())
    }
}

fn image_file(img: &[u8], who: &str) -> (PathBuf, File) {
    let path = std::env::temp_dir().join(format!("watos-bench-fat-{}-{who}.img", std::process::id()));
    std::fs::write(&path, img).unwrap();
    let file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
    (path, file)
}

fn clock() -> Box<FixedClock> {
    Box::new(FixedClock(Timespec::new(1_700_000_000, 0)))
}

fn payload() -> Vec<u8> {
    (0..FILE).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()
}

fn offsets(n: usize) -> Vec<u64> {
    let mut rng = prng::XorShift64(0x2545_F491_4F6C_DD1D);
    (0..n).map(|_| rng.below(FILE as u64 / 4096) * 4096).collect()
}

fn image(kind: FatType, spc: u8, mib: u64) -> Vec<u8> {
    let opts = FormatOptions { fat_type: Some(kind), sectors_per_cluster: Some(spc), ..Default::default() };
    let fs = FatFs::format(RamDisk::new(mib * 2048), &opts, clock()).expect("format");
    fs.unmount().expect("unmount").into_bytes()
}

/// (write s, read s, random s, create s, list s) for our crate.
fn ours<D: BlockDevice>(dev: D, data: &[u8], reads: usize, files: usize) -> [f64; 5] {
    let mut fs = FatFs::mount(dev, clock()).unwrap();
    let root = fs.root();
    let f = fs.create(root, "big file.bin", &NewNode::new(FileType::File, 0o644)).unwrap().ino;
    let (_, w) = timed(|| {
        for (i, c) in data.chunks(CHUNK).enumerate() {
            fs.write(f, (i * CHUNK) as u64, c).unwrap();
        }
        fs.sync().unwrap();
    });
    let dev = fs.unmount().unwrap();
    let mut fs = FatFs::mount(dev, clock()).unwrap();
    let f = fs.lookup(root, "big file.bin").unwrap().ino;
    let mut buf = vec![0u8; CHUNK];
    let (_, r) = timed(|| {
        for i in 0..FILE / CHUNK {
            assert_eq!(fs.read(f, (i * CHUNK) as u64, &mut buf).unwrap(), CHUNK);
            assert_eq!(buf[7], data[i * CHUNK + 7]);
        }
    });
    let offs = offsets(reads);
    let mut small = [0u8; 4096];
    let (_, rr) = timed(|| {
        for &o in &offs {
            fs.read(f, o, &mut small).unwrap();
        }
    });
    assert_eq!(small[..], data[*offs.last().unwrap() as usize..][..4096]);
    let dir = fs.create(root, "many", &NewNode::new(FileType::Directory, 0o755)).unwrap().ino;
    let (_, c) = timed(|| {
        for i in 0..files {
            fs.create(dir, &format!("file number {i:04}.dat"), &NewNode::new(FileType::File, 0o644)).unwrap();
        }
        fs.sync().unwrap();
    });
    let dev = fs.unmount().unwrap();
    let mut fs = FatFs::mount(dev, clock()).unwrap();
    let (n, l) = timed(|| {
        let dir = fs.lookup(root, "many").unwrap().ino;
        let mut n = 0;
        let mut cookie = 0;
        loop {
            let page = fs.readdir(dir, cookie, 256).unwrap();
            let Some(last) = page.last() else { break };
            cookie = last.next_cookie;
            n += page.len();
        }
        n
    });
    assert_eq!(n, files);
    [w, r, rr, c, l]
}

fn theirs<T: fatfs::ReadWriteSeek>(storage: T, data: &[u8], reads: usize, files: usize) -> [f64; 5] {
    let fs = fatfs::FileSystem::new(storage, fatfs::FsOptions::new()).unwrap();
    let (_, w) = timed(|| {
        let mut f = fs.root_dir().create_file("big file.bin").unwrap();
        for c in data.chunks(CHUNK) {
            f.write_all(c).unwrap();
        }
        f.flush().unwrap();
    });
    let mut buf = vec![0u8; CHUNK];
    let (_, r) = timed(|| {
        let mut f = fs.root_dir().open_file("big file.bin").unwrap();
        for i in 0..FILE / CHUNK {
            f.read_exact(&mut buf).unwrap();
            assert_eq!(buf[7], data[i * CHUNK + 7]);
        }
    });
    let offs = offsets(reads);
    let mut small = [0u8; 4096];
    let (_, rr) = timed(|| {
        let mut f = fs.root_dir().open_file("big file.bin").unwrap();
        for &o in &offs {
            f.seek(SeekFrom::Start(o)).unwrap();
            f.read_exact(&mut small).unwrap();
        }
    });
    assert_eq!(small[..], data[*offs.last().unwrap() as usize..][..4096]);
    let dir = fs.root_dir().create_dir("many").unwrap();
    let (_, c) = timed(|| {
        for i in 0..files {
            dir.create_file(&format!("file number {i:04}.dat")).unwrap();
        }
    });
    let (n, l) = timed(|| fs.root_dir().open_dir("many").unwrap().iter().filter(|e| e.is_ok()).count());
    assert_eq!(n, files + 2); // fatfs lists `.` and `..`
    drop(dir);
    fs.unmount().unwrap();
    [w, r, rr, c, l]
}

/// Element-wise minimum time over `n` runs, so one-off noise (page faults, a busy core) is dropped.
fn best_of(n: usize, mut run: impl FnMut() -> [f64; 5]) -> [f64; 5] {
    let mut best = [f64::MAX; 5];
    for _ in 0..n {
        for (b, t) in best.iter_mut().zip(run()) {
            *b = b.min(t);
        }
    }
    best
}

fn main() {
    let data = payload();
    let configs: [(&str, FatType, u8, u64); 3] = [
        ("FAT32, 512 B clusters", FatType::Fat32, 1, 160),
        ("FAT32, 4 KiB clusters", FatType::Fat32, 8, 320),
        ("FAT16, 4 KiB clusters", FatType::Fat16, 8, 200),
    ];
    let mut ram = Vec::new();
    let mut file = Vec::new();
    for (name, kind, spc, mib) in configs {
        let img = image(kind, spc, mib);
        let a = best_of(3, || ours(RamDisk::from_bytes(img.to_vec()), &data, RANDOM_READS, FILES));
        let b = best_of(3, || theirs(Cursor::new(img.to_vec()), &data, RANDOM_READS, FILES));
        rows(&mut ram, name, a, b, RANDOM_READS, FILES);
        let (pa, fa) = image_file(&img, "ours");
        let sectors = img.len() as u64 / SECTOR_SIZE as u64;
        let a = ours(HostFile { file: fa, sectors }, &data, RANDOM_READS_FILE, FILES_FILE);
        let (pb, fb) = image_file(&img, "fatfs");
        let b = theirs(fscommon::BufStream::new(fb), &data, RANDOM_READS_FILE, FILES_FILE);
        let _ = std::fs::remove_file(pa);
        let _ = std::fs::remove_file(pb);
        rows(&mut file, name, a, b, RANDOM_READS_FILE, FILES_FILE);
    }
    println!("### Image file in the host page cache (one system call per device request)\n");
    table(file);
    println!("\n### RAM (filesystem CPU time only; best of 3 runs)\n");
    table(ram);
    println!(
        "\nImages made by the `fat` formatter; 1 MiB read/write calls; speed-up = how many times faster `fat` is."
    );
}

fn rows(out: &mut Vec<Row>, image: &'static str, a: [f64; 5], b: [f64; 5], reads: usize, files: usize) {
    let mb = |s: f64| mb_per_s(FILE as u64, s);
    out.push(Row {
        image,
        what: "sequential write 64 MiB (MB/s)".into(),
        ours: mb(a[0]),
        theirs: mb(b[0]),
        rate: true,
    });
    out.push(Row { image, what: "sequential read 64 MiB (MB/s)".into(), ours: mb(a[1]), theirs: mb(b[1]), rate: true });
    let random = format!("{reads} random 4 KiB reads (ms)");
    out.push(Row { image, what: random, ours: a[2] * 1e3, theirs: b[2] * 1e3, rate: false });
    let create = format!("create {files} files in one dir (ms)");
    out.push(Row { image, what: create, ours: a[3] * 1e3, theirs: b[3] * 1e3, rate: false });
    let list = format!("list {files} files, cold (ms)");
    out.push(Row { image, what: list, ours: a[4] * 1e3, theirs: b[4] * 1e3, rate: false });
}

fn table(rows: Vec<Row>) {
    println!("| image | operation | watos `fat` | rust-fatfs 0.3 | speed-up |");
    println!("|---|---|---:|---:|---:|");
    for r in rows {
        let ratio = if r.rate { r.ours / r.theirs } else { r.theirs / r.ours };
        println!("| {} | {} | {:.2} | {:.2} | {:.1}x |", r.image, r.what, r.ours, r.theirs, ratio);
    }
}
