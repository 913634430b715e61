//! FUSE benchmark: the same fio jobs on tmpfs, on WATOS images mounted with `watos-image mount`
//! (WFS and FAT, each request through the vfs and filesystem servers), and on a RedoxFS FUSE mount.
//!
//! Design: the jobs are the reference fio-mount script's (sequential write of 256 MiB in 1 MiB
//! calls with a final fsync, sequential read of 256 MiB in 1 MiB calls, 5 s of 4 KiB random reads in
//! a 256 MiB file; psync, one job), run on every mount in one go so the ratios compare like with
//! like. This binary mounts images by re-running itself as `fuse --serve mount ...`, which is the
//! `watos-image` command line linked in, so the benchmark measures the release build of the real
//! tool. RedoxFS needs its own binaries (`cargo install --root target/tools redoxfs`); missing fio,
//! FUSE or RedoxFS give a plain SKIP line instead of a row. Ratios are to tmpfs (the kernel's page
//! cache with no FUSE round trip), so they show the cost of FUSE plus the filesystem.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Figures {
    write_mb_s: f64,
    read_mb_s: f64,
    rand_iops: f64,
}

fn tool(name: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/bin").join(name);
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join(name)).chain([root]).find(|p| p.is_file())
}

/// One fio job in terse format; returns its fields.
fn fio(dir: &Path, args: &[&str]) -> Result<Vec<String>, String> {
    let out = Command::new("fio")
        .arg(format!("--directory={}", dir.display()))
        .args(["--size=256M", "--ioengine=psync", "--output-format=terse"])
        .args(args)
        .output()
        .map_err(|e| format!("fio: {e}"))?;
    if !out.status.success() {
        return Err(format!("fio {args:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().last().unwrap_or("").split(';').map(str::to_owned).collect())
}

fn field(f: &[String], i: usize) -> Result<f64, String> {
    f.get(i).and_then(|v| v.parse().ok()).ok_or_else(|| format!("fio terse output has no field {i}"))
}

fn run_jobs(dir: &Path) -> Result<Figures, String> {
    // Terse v3: field 7 = read KiB/s, 8 = read IOPS, 48 = write KiB/s (1-based, as in fio-mount).
    let w = fio(dir, &["--name=seqwrite", "--rw=write", "--bs=1M", "--end_fsync=1"])?;
    let r = fio(dir, &["--name=seqread", "--rw=read", "--bs=1M"])?;
    let q = fio(dir, &["--name=randread", "--rw=randread", "--bs=4k", "--runtime=5", "--time_based"])?;
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
        let _ = std::fs::remove_file(entry.path());
    }
    Ok(Figures {
        write_mb_s: field(&w, 47)? * 1024.0 / 1e6,
        read_mb_s: field(&r, 6)? * 1024.0 / 1e6,
        rand_iops: field(&q, 7)?,
    })
}

fn is_mounted(dir: &Path) -> bool {
    let want = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.split(' ').nth(4) == Some(want.as_str())))
        .unwrap_or(false)
}

/// Start a mount process and wait until `dir` is mounted.
fn start(mut cmd: Command, dir: &Path) -> Result<Child, String> {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !is_mounted(dir) {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("mount exited early: {status}"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("not mounted within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// Unmount (SIGTERM for our tool, umount for others) and reap.
fn stop(mut child: Child, dir: &Path, ours: bool) {
    if ours {
        // Safety: kill(2) on a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    } else {
        let _ = Command::new("umount").arg(dir).status();
    }
    let _ = child.wait();
    if is_mounted(dir) {
        let _ = Command::new("umount").arg("-l").arg(dir).status();
    }
}

/// Make an image with our tool, mount it with `extra` options, run the jobs.
fn watos(work: &Path, format: &str, size: &str, extra: &[&str]) -> Result<Figures, String> {
    let img = work.join(format!("{format}.img"));
    let mnt = work.join(format!("{format}-mnt"));
    std::fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
    let code = watos_image::cli::run(&["mkfs".into(), format.into(), img.display().to_string(), size.into()]);
    if code != 0 {
        return Err(format!("mkfs {format} failed"));
    }
    let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    cmd.args(["--serve", "mount"]).args(extra).arg(&img).arg(&mnt);
    let child = start(cmd, &mnt)?;
    let figures = run_jobs(&mnt);
    stop(child, &mnt, true);
    let _ = std::fs::remove_file(&img);
    figures
}

fn redoxfs(work: &Path) -> Result<Figures, String> {
    let (Some(mount), Some(mkfs)) = (tool("redoxfs"), tool("redoxfs-mkfs")) else {
        return Err("SKIP: redoxfs binaries not found (cargo install --root target/tools redoxfs)".into());
    };
    let img = work.join("redox.img");
    let mnt = work.join("redox-mnt");
    std::fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
    std::fs::File::create(&img).and_then(|f| f.set_len(2 << 30)).map_err(|e| e.to_string())?;
    let out = Command::new(mkfs).arg(&img).stdin(Stdio::null()).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("redoxfs-mkfs failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let mut cmd = Command::new(mount);
    cmd.arg("--no-daemon").arg(&img).arg(&mnt);
    let child = start(cmd, &mnt)?;
    let figures = run_jobs(&mnt);
    stop(child, &mnt, false);
    let _ = std::fs::remove_file(&img);
    figures
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        std::process::exit(watos_image::cli::run(&args[1..]) as i32);
    }
    if Command::new("fio").arg("--version").output().is_err() {
        println!("SKIP: fio not installed");
        return;
    }
    if std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse").is_err() {
        println!("SKIP: /dev/fuse is not usable (FUSE benchmarks need root and /dev/fuse)");
        return;
    }
    let work = std::env::temp_dir().join(format!("watos-fuse-bench-{}", std::process::id()));
    let shm = PathBuf::from(format!("/dev/shm/watos-fuse-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    std::fs::create_dir_all(&shm).expect("tmpfs dir");

    let rows: Vec<(&str, Result<Figures, String>)> = vec![
        ("tmpfs (/dev/shm, no FUSE)", run_jobs(&shm)),
        ("WFS, watos-image mount (vfs + filesystem servers)", watos(&work, "wfs", "2G", &[])),
        ("FAT32, watos-image mount (vfs + filesystem servers)", watos(&work, "fat", "2G", &[])),
        ("RedoxFS 0.9 FUSE mount", redoxfs(&work)),
    ];
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&shm);

    println!("fio (psync, 1 job): 256 MiB sequential write in 1 MiB + fsync, 256 MiB sequential read in 1 MiB, 5 s 4 KiB random read; ratio = mount / tmpfs\n");
    println!("| mount | seq write MB/s | seq read MB/s | 4 KiB rand read IOPS | write / read / IOPS vs tmpfs |");
    println!("|---|---:|---:|---:|---|");
    let base = match &rows[0].1 {
        Ok(f) => Some((f.write_mb_s, f.read_mb_s, f.rand_iops)),
        Err(_) => None,
    };
    for (name, r) in &rows {
        match r {
            Ok(f) => {
                let ratio = base.map_or(String::from("-"), |(w, rd, q)| {
                    format!("{:.3} / {:.3} / {:.3}", f.write_mb_s / w, f.read_mb_s / rd, f.rand_iops / q)
                });
                println!("| {name} | {:.0} | {:.0} | {:.0} | {ratio} |", f.write_mb_s, f.read_mb_s, f.rand_iops);
            }
            Err(e) => println!("| {name} | - | - | - | {} |", e.replace('|', "/").lines().next().unwrap_or("")),
        }
    }
}
