//! Command-line parsing and dispatch of `watos-image`.
//!
//! Design: a hand-written parser (flags may appear anywhere, the rest are positionals) keeps the tool
//! free of dependencies. Every command opens the image, does its work and closes it, so each
//! invocation leaves a committed, consistent image even when the work fails half-way. Exit status:
//! 0 success, 1 failure (or problems found by `check`/`scrub`), 2 bad usage. Errors are one line on
//! stderr, prefixed `watos-image: `.

use std::io::Write;
use std::path::Path;

use crate::image::{self, Format, ImageFs, MkfsOptions, SnapshotCmd};
use crate::paths::{self, ToolResult};

pub const USAGE: &str = "\
usage: watos-image <command> ...
  mkfs wfs|fat IMAGE SIZE [--fat-type 12|16|32]   create and format an image (SIZE: 64M, 1G, bytes)
       [--checksum xxh64|crc32]                  WFS block checksum (default xxh64)
  ls IMAGE [PATH]                                list a directory (default /)
  cat IMAGE PATH                                 print a file
  put IMAGE HOSTFILE PATH                        copy a host file into the image
  get IMAGE PATH HOSTFILE                        copy a file out of the image
  mkdir [-p] IMAGE PATH                          make a directory (-p: with parents)
  rm [-r] IMAGE PATH                             remove a file or empty directory (-r: a tree)
  check IMAGE [--repair]                         WFS fsck / FAT check (exit 1 if problems remain)
  scrub IMAGE                                    WFS: read every block and verify checksums
  snapshot IMAGE create|list|delete [NAME]       WFS snapshots
  mount IMAGE DIR | mount --memfs DIR            serve the image on DIR through FUSE until unmounted
                                                 or interrupted; commits on exit. Requests go through
                                                 the vfs and filesystem servers' protocols
The format (WFS or FAT) is detected from the image.";

/// Why a command did not succeed.
enum Failure {
    Usage(String),
    Failed(String),
    /// The command ran, and its report says the image has problems (already printed).
    Problems,
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Failed(s)
    }
}

/// Flags and positionals of one command line.
struct Args<'a> {
    flags: Vec<&'a str>,
    values: Vec<(&'a str, &'a str)>,
    pos: Vec<&'a str>,
}

impl<'a> Args<'a> {
    fn parse(args: &'a [String]) -> Result<Self, Failure> {
        let mut out = Args { flags: Vec::new(), values: Vec::new(), pos: Vec::new() };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                key @ ("--fat-type" | "--checksum") => {
                    let v = it.next().ok_or_else(|| Failure::Usage(format!("{key} needs a value")))?;
                    out.values.push((key, v));
                }
                f if f.starts_with('-') && f.len() > 1 => out.flags.push(f),
                p => out.pos.push(p),
            }
        }
        Ok(out)
    }

    fn allow(&self, allowed: &[&str]) -> Result<(), Failure> {
        let stray = self.flags.iter().chain(self.values.iter().map(|(k, _)| k)).find(|f| !allowed.contains(f));
        match stray {
            Some(f) => Err(Failure::Usage(format!("unknown option `{f}` for this command"))),
            None => Ok(()),
        }
    }

    fn has(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }

    /// Exactly `min..=max` positionals.
    fn positionals(&self, min: usize, max: usize) -> Result<&[&'a str], Failure> {
        if self.pos.len() < min || self.pos.len() > max {
            return Err(Failure::Usage(format!(
                "expected {min}{} arguments, got {}",
                if max > min { format!("-{max}") } else { String::new() },
                self.pos.len()
            )));
        }
        Ok(&self.pos)
    }
}

/// Run one command line (without the program name); returns the exit status.
pub fn run(argv: &[String]) -> u8 {
    let Some((cmd, rest)) = argv.split_first() else {
        eprintln!("{USAGE}");
        return 2;
    };
    let result = match cmd.as_str() {
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Args::parse(rest).and_then(|args| dispatch(cmd, &args)),
    };
    match result {
        Ok(()) => 0,
        Err(Failure::Problems) => 1,
        Err(Failure::Failed(msg)) => {
            eprintln!("watos-image: {msg}");
            1
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("watos-image: {cmd}: {msg}\n{USAGE}");
            2
        }
    }
}

fn dispatch(cmd: &str, args: &Args) -> Result<(), Failure> {
    match cmd {
        "mkfs" => mkfs(args),
        "ls" => {
            args.allow(&[])?;
            let p = args.positionals(1, 2)?;
            with_image(p[0], |fs| {
                for line in paths::list(fs, p.get(1).copied().unwrap_or("/"))? {
                    println!("{line}");
                }
                Ok(())
            })
        }
        "cat" => {
            args.allow(&[])?;
            let p = args.positionals(2, 2)?;
            with_image(p[0], |fs| {
                let stdout = std::io::stdout();
                let mut lock = stdout.lock();
                paths::read_file(fs, p[1], &mut lock)?;
                lock.flush().map_err(|e| format!("stdout: {e}"))
            })
        }
        "put" => {
            args.allow(&[])?;
            let p = args.positionals(3, 3)?;
            let host = Path::new(p[1]);
            let mut file = std::fs::File::open(host).map_err(|e| format!("{}: {e}", host.display()))?;
            let meta = file.metadata().map_err(|e| format!("{}: {e}", host.display()))?;
            if !meta.is_file() {
                return Err(Failure::Failed(format!("{}: not a regular file", host.display())));
            }
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
            let name = host.file_name().and_then(|n| n.to_str()).unwrap_or("file").to_string();
            with_image(p[0], |fs| paths::write_file(fs, p[2], &name, mode, &mut file).map(|_| ()))
        }
        "get" => {
            args.allow(&[])?;
            let p = args.positionals(3, 3)?;
            with_image(p[0], |fs| {
                // Resolve before creating the host file, so a bad path leaves no empty file behind.
                paths::resolve(fs, p[1])?;
                let mut out = std::fs::File::create(p[2]).map_err(|e| format!("{}: {e}", p[2]))?;
                paths::read_file(fs, p[1], &mut out)?;
                out.sync_all().map_err(|e| format!("{}: {e}", p[2]))
            })
        }
        "mkdir" => {
            args.allow(&["-p"])?;
            let p = args.positionals(2, 2)?;
            with_image(p[0], |fs| paths::make_dir(fs, p[1], args.has("-p")))
        }
        "rm" => {
            args.allow(&["-r"])?;
            let p = args.positionals(2, 2)?;
            with_image(p[0], |fs| paths::remove(fs, p[1], args.has("-r")))
        }
        "check" => {
            args.allow(&["--repair"])?;
            let p = args.positionals(1, 1)?;
            report(p[0], |fs| fs.check(args.has("--repair")))
        }
        "scrub" => {
            args.allow(&[])?;
            let p = args.positionals(1, 1)?;
            report(p[0], |fs| fs.scrub())
        }
        "snapshot" => snapshot(args),
        "mount" => mount(args),
        other => Err(Failure::Usage(format!("unknown command `{other}`"))),
    }
}

/// Open the image, run `f`, then close (commit) it whatever `f` returned; the first error wins.
fn with_image(path: &str, f: impl FnOnce(&mut dyn ImageFs) -> ToolResult<()>) -> Result<(), Failure> {
    let mut fs = image::open(Path::new(path))?;
    let result = f(fs.as_mut());
    let closed = fs.close().map_err(|e| format!("{path}: committing the image failed: {e}"));
    result?;
    closed?;
    Ok(())
}

fn report(path: &str, f: impl FnOnce(&mut dyn ImageFs) -> ToolResult<image::Report>) -> Result<(), Failure> {
    let mut clean = true;
    with_image(path, |fs| {
        let r = f(fs)?;
        println!("{}", r.text.trim_end());
        clean = r.clean;
        Ok(())
    })?;
    if clean {
        Ok(())
    } else {
        Err(Failure::Problems)
    }
}

fn mkfs(args: &Args) -> Result<(), Failure> {
    args.allow(&["--fat-type", "--checksum"])?;
    let p = args.positionals(3, 3)?;
    let format = match p[0] {
        "wfs" => Format::Wfs,
        "fat" => Format::Fat,
        other => return Err(Failure::Usage(format!("unknown format `{other}` (wfs or fat)"))),
    };
    let fat_type = match args.values.iter().find(|(k, _)| *k == "--fat-type") {
        None => None,
        Some(_) if format != Format::Fat => return Err(Failure::Usage("--fat-type is for fat images".into())),
        Some((_, "12")) => Some(12),
        Some((_, "16")) => Some(16),
        Some((_, "32")) => Some(32),
        Some((_, v)) => return Err(Failure::Usage(format!("--fat-type must be 12, 16 or 32, not `{v}`"))),
    };
    let checksum = match args.values.iter().find(|(k, _)| *k == "--checksum") {
        None => None,
        Some(_) if format != Format::Wfs => return Err(Failure::Usage("--checksum is for wfs images".into())),
        Some((_, "xxh64")) => Some(wfs::Checksum::Xxh64),
        Some((_, "crc32")) => Some(wfs::Checksum::Crc32),
        Some((_, v)) => return Err(Failure::Usage(format!("--checksum must be xxh64 or crc32, not `{v}`"))),
    };
    let bytes = image::parse_size(p[2])?;
    image::mkfs(Path::new(p[1]), &MkfsOptions { format, bytes, fat_type, checksum })?;
    Ok(())
}

fn snapshot(args: &Args) -> Result<(), Failure> {
    args.allow(&[])?;
    let p = args.positionals(2, 3)?;
    let cmd = match (p[1], p.get(2)) {
        ("create", Some(n)) => SnapshotCmd::Create(n.to_string()),
        ("delete", Some(n)) => SnapshotCmd::Delete(n.to_string()),
        ("list", None) => SnapshotCmd::List,
        ("create" | "delete", None) => return Err(Failure::Usage(format!("snapshot {} needs a NAME", p[1]))),
        (other, _) => return Err(Failure::Usage(format!("unknown snapshot action `{other}` (create, list, delete)"))),
    };
    with_image(p[0], |fs| {
        let out = fs.snapshot(&cmd)?;
        if !out.is_empty() {
            println!("{}", out.trim_end());
        }
        Ok(())
    })
}

fn mount(args: &Args) -> Result<(), Failure> {
    args.allow(&["--memfs"])?;
    let (fs, dir): (Box<dyn ImageFs>, &str) = if args.has("--memfs") {
        let p = args.positionals(1, 1)?;
        (Box::new(memfs::MemFs::new(Box::new(crate::SystemClock))), p[0])
    } else {
        let p = args.positionals(2, 2)?;
        (image::open(Path::new(p[0]))?, p[1])
    };
    crate::fuse::serve(fs, Path::new(dir))?;
    Ok(())
}
