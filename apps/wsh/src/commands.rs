//! The built-in commands.
//!
//! Design: one `match` dispatches; each command is a small method on [`Env`] that parses its own
//! flags, does its work through `watos_fs`, writes to the `out` it is given and returns a
//! [`CmdError`] on the first failure (so a line prints at most one error). Listings are sorted by
//! name so output is deterministic for scripts and tests.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

use protocol::fs::FileType;
use protocol::ipc::Transport;
use watos_fs::{ErrorKind, Metadata};

use crate::shell::{CmdError, Env, Hooks};

const HELP: &str = "\
commands:
  ls [-l] [path...]      list directories
  cat path...            print files
  echo [-n] word...      print words (use > file or >> file to write a file)
  cp src dst             copy a file (into dst if it is a directory)
  mv src dst             rename or move
  rm path...             remove files
  mkdir [-p] dir...      make directories (-p: with parents, no error if present)
  rmdir dir...           remove empty directories
  stat path...           show attributes
  df [mount...]          space of filesystems
  sync [mount...]        make everything written durable
  cd [dir], pwd          change or show the current directory
  stats                  vfs, cache and I/O statistics
  snapshot create|delete NAME [mount], snapshot list [mount]
                         snapshots of a filesystem (WFS; / by default)
  scrub [mount]          verify every checksum, repair from copies
  ps                     servers and processes
  kill task              stop a server or process
  restart task           restart a server from its image
  help, exit";

fn kind_char(k: FileType) -> char {
    match k {
        FileType::Directory => 'd',
        FileType::Symlink => 'l',
        FileType::File => '-',
        FileType::Fifo => 'p',
        FileType::Socket => 's',
        FileType::CharDevice => 'c',
        FileType::BlockDevice => 'b',
    }
}

fn kind_name(k: FileType) -> &'static str {
    match k {
        FileType::Directory => "directory",
        FileType::Symlink => "symbolic link",
        FileType::File => "regular file",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharDevice => "character device",
        FileType::BlockDevice => "block device",
    }
}

fn perms(mode: u32) -> String {
    let mut s = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// The last component of `path`.
fn base_name(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or(path)
}

/// Leading `-x` flags (from `allowed`) and the remaining operands.
fn flags<'a>(args: &'a [String], allowed: &str, usage: &'static str) -> Result<(Vec<char>, &'a [String]), CmdError> {
    let mut set = Vec::new();
    let mut rest = args;
    while let Some(a) = rest.first() {
        if a.len() < 2 || !a.starts_with('-') {
            break;
        }
        for c in a.chars().skip(1) {
            if !allowed.contains(c) {
                return Err(CmdError::Usage(usage));
            }
            set.push(c);
        }
        rest = &rest[1..];
    }
    Ok((set, rest))
}

impl<T: Transport, H: Hooks> Env<T, H> {
    pub(crate) fn dispatch(&mut self, cmd: &str, args: &[String], out: &mut dyn Write) -> Result<(), CmdError> {
        match cmd {
            "help" => Ok(writeln!(out, "{HELP}")?),
            "pwd" => Ok(writeln!(out, "{}", self.cwd)?),
            "cd" => self.cd(args),
            "ls" => self.ls(args, out),
            "cat" => self.cat(args, out),
            "echo" => echo(args, out),
            "cp" => self.two_paths(args, "cp src dst", |fs, a, b| fs.copy(a, b).map(|_| ())),
            "mv" => self.two_paths(args, "mv src dst", |fs, a, b| fs.rename(a, b)),
            "rm" => self.each(args, "rm path...", |fs, p| fs.remove_file(p)),
            "rmdir" => self.each(args, "rmdir dir...", |fs, p| fs.remove_dir(p)),
            "mkdir" => self.mkdir(args),
            "stat" => self.stat(args, out),
            "df" => self.df(args, out),
            "sync" => self.sync(args),
            "stats" => self.stats(out),
            "snapshot" => self.snapshot(args, out),
            "scrub" => self.scrub(args, out),
            "ps" => self.hooks.ps(out),
            "kill" | "restart" => {
                let [task] = args else {
                    return Err(CmdError::Usage(if cmd == "kill" { "kill task" } else { "restart task" }));
                };
                if cmd == "kill" {
                    self.hooks.kill(task, out)
                } else {
                    self.hooks.restart(task, out)
                }
            }
            _ => Err(CmdError::Msg(String::from("command not found (try help)"))),
        }
    }

    fn cd(&mut self, args: &[String]) -> Result<(), CmdError> {
        let target = match args {
            [] => String::from("/"),
            [d] => self.resolve(d),
            _ => return Err(CmdError::Usage("cd [dir]")),
        };
        let md = self.fs.metadata(&target).map_err(CmdError::at(&target))?;
        if !md.is_dir() {
            return Err(CmdError::Fs { path: target, err: protocol::Error::NotADirectory.into() });
        }
        self.cwd = target;
        Ok(())
    }

    fn ls(&mut self, args: &[String], out: &mut dyn Write) -> Result<(), CmdError> {
        let (f, paths) = flags(args, "l", "ls [-l] [path...]")?;
        let long = f.contains(&'l');
        let paths: Vec<String> = if paths.is_empty() {
            alloc::vec![self.cwd.clone()]
        } else {
            paths.iter().map(|p| self.resolve(p)).collect()
        };
        for (i, path) in paths.iter().enumerate() {
            let md = self.fs.metadata(path).map_err(CmdError::at(path))?;
            if !md.is_dir() {
                line(out, long, base_name(path), &md)?;
                continue;
            }
            if paths.len() > 1 {
                writeln!(out, "{}{path}:", if i > 0 { "\n" } else { "" })?;
            }
            let mut entries = Vec::new();
            for e in self.fs.read_dir(path).map_err(CmdError::at(path))? {
                let e = e.map_err(CmdError::at(path))?;
                let md = if long { Some(e.metadata().map_err(CmdError::at(e.path()))?) } else { None };
                entries.push((e.file_name().to_string(), md));
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, md) in entries {
                match md {
                    Some(md) => line(out, true, &name, &md)?,
                    None => writeln!(out, "{name}")?,
                }
            }
        }
        Ok(())
    }

    fn cat(&mut self, args: &[String], out: &mut dyn Write) -> Result<(), CmdError> {
        if args.is_empty() {
            return Err(CmdError::Usage("cat path..."));
        }
        for p in args {
            let path = self.resolve(p);
            let data = self.fs.read(&path).map_err(CmdError::at(&path))?;
            out.write_str(&String::from_utf8_lossy(&data))?;
        }
        Ok(())
    }

    /// `cp`/`mv`: a destination that is a directory receives the source under its own name.
    fn two_paths(
        &mut self,
        args: &[String],
        usage: &'static str,
        op: impl FnOnce(&watos_fs::Fs<T>, &str, &str) -> watos_fs::Result<()>,
    ) -> Result<(), CmdError> {
        let [src, dst] = args else { return Err(CmdError::Usage(usage)) };
        let src = self.resolve(src);
        let mut dst = self.resolve(dst);
        if self.fs.metadata(&dst).is_ok_and(|m| m.is_dir()) {
            if !dst.ends_with('/') {
                dst.push('/');
            }
            dst.push_str(base_name(&src));
        }
        op(&self.fs, &src, &dst).map_err(|err| {
            // Name the path the error is about: the source unless it was found.
            let path = if err.kind() == ErrorKind::NotFound && self.fs.exists(&src) == Ok(true) { dst } else { src };
            CmdError::Fs { path, err }
        })
    }

    fn each(
        &mut self,
        args: &[String],
        usage: &'static str,
        op: impl Fn(&watos_fs::Fs<T>, &str) -> watos_fs::Result<()>,
    ) -> Result<(), CmdError> {
        if args.is_empty() {
            return Err(CmdError::Usage(usage));
        }
        for p in args {
            let path = self.resolve(p);
            op(&self.fs, &path).map_err(CmdError::at(&path))?;
        }
        Ok(())
    }

    fn mkdir(&mut self, args: &[String]) -> Result<(), CmdError> {
        let (f, dirs) = flags(args, "p", "mkdir [-p] dir...")?;
        let parents = f.contains(&'p');
        self.each(dirs, "mkdir [-p] dir...", |fs, p| if parents { fs.create_dir_all(p) } else { fs.create_dir(p) })
    }

    fn stat(&mut self, args: &[String], out: &mut dyn Write) -> Result<(), CmdError> {
        if args.is_empty() {
            return Err(CmdError::Usage("stat path..."));
        }
        for p in args {
            let path = self.resolve(p);
            let md = self.fs.symlink_metadata(&path).map_err(CmdError::at(&path))?;
            let st = md.stat();
            writeln!(out, "  File: {path}")?;
            writeln!(out, "  Type: {}  Size: {}  Blocks: {}", kind_name(st.kind), st.size, st.blocks)?;
            writeln!(
                out,
                " Inode: {}  Links: {}  Mode: {:04o} ({}{})",
                st.ino,
                st.nlink,
                st.mode,
                kind_char(st.kind),
                perms(st.mode)
            )?;
            writeln!(out, "Modify: {}.{:09}", st.mtime.secs, st.mtime.nanos)?;
        }
        Ok(())
    }

    fn mounts_or(&self, args: &[String]) -> Vec<String> {
        if args.is_empty() {
            self.hooks.mounts()
        } else {
            args.iter().map(|a| self.resolve(a)).collect()
        }
    }

    fn df(&mut self, args: &[String], out: &mut dyn Write) -> Result<(), CmdError> {
        writeln!(out, "{:<12} {:>10} {:>10} {:>10} {:>4}", "Mounted on", "KiB", "Used", "Avail", "Use%")?;
        for m in self.mounts_or(args) {
            let s = self.fs.statfs(&m).map_err(CmdError::at(&m))?;
            let kib = |blocks: u64| blocks.saturating_mul(s.block_size as u64) / 1024;
            let used = s.total_blocks.saturating_sub(s.free_blocks);
            let pct = if s.total_blocks == 0 { 0 } else { (used * 100).div_ceil(s.total_blocks) };
            writeln!(
                out,
                "{:<12} {:>10} {:>10} {:>10} {:>3}%",
                m,
                kib(s.total_blocks),
                kib(used),
                kib(s.free_blocks),
                pct
            )?;
        }
        Ok(())
    }

    /// Sync each filesystem by fsyncing its mount directory (the filesystems commit everything).
    fn sync(&mut self, args: &[String]) -> Result<(), CmdError> {
        for m in self.mounts_or(args) {
            let f = self.fs.open(&m).map_err(CmdError::at(&m))?;
            f.sync_all().map_err(CmdError::at(&m))?;
        }
        Ok(())
    }

    fn stats(&mut self, out: &mut dyn Write) -> Result<(), CmdError> {
        let v = self.fs.vfs_stats()?;
        writeln!(out, "vfs: opens {} closes {} open files {} mounts {}", v.opens, v.closes, v.open_files, v.mounts)?;
        writeln!(
            out,
            "vfs: reads {} ({} bytes) writes {} ({} bytes) batch reads {}",
            v.reads, v.bytes_read, v.writes, v.bytes_written, v.batch_reads
        )?;
        let pct = |hit: u64, miss: u64| (hit * 100).checked_div(hit + miss).unwrap_or(0);
        writeln!(
            out,
            "vfs: lookups {} dentry hit {}% attr hit {}% filesystem re-opens {}",
            v.lookups,
            pct(v.dentry_hits, v.dentry_misses),
            pct(v.attr_hits, v.attr_misses),
            v.fs_reopens
        )?;
        writeln!(
            out,
            "vfs: filesystem errors {} (I/O {}, server gone {}, busy {})",
            v.fs_errors, v.io_errors, v.server_errors, v.busy_errors
        )?;
        let t = self.fs.vfs_timing()?;
        for (kind, l) in &t.ops {
            writeln!(out, "{}", crate::report::latency_line("vfs", kind.name(), l, t.tick_hz))?;
        }
        writeln!(out, "{}", crate::report::errors_line("vfs", &t.errors))?;
        self.hooks.stats(out)
    }
}

fn line(out: &mut dyn Write, long: bool, name: &str, md: &Metadata) -> Result<(), CmdError> {
    if long {
        writeln!(out, "{}{} {:>10} {name}", kind_char(md.file_type()), perms(md.mode()), md.len())?;
    } else {
        writeln!(out, "{name}")?;
    }
    Ok(())
}

fn echo(args: &[String], out: &mut dyn Write) -> Result<(), CmdError> {
    let (newline, words) = match args.first() {
        Some(a) if a == "-n" => (false, &args[1..]),
        _ => (true, args),
    };
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.write_char(' ')?;
        }
        out.write_str(w)?;
    }
    if newline {
        out.write_char('\n')?;
    }
    Ok(())
}
