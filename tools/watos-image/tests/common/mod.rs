//! Helpers shared by the integration tests: run the built binary, find external test tools, and
//! hold a FUSE mount that is always taken down, even when a test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_watos-image");

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// Run `watos-image ARGS`.
pub fn tool(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run watos-image")
}

/// Run and require success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = tool(args);
    assert!(
        out.status.success(),
        "watos-image {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Run and require failure with `code`; returns stderr.
pub fn fails(args: &[&str], code: i32) -> String {
    let out = tool(args);
    assert_eq!(out.status.code(), Some(code), "watos-image {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An external tool from PATH or from `<repo>/target/tools/bin` (where `cargo install --root` puts it).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let local = workspace_root().join("target/tools/bin").join(name);
    let in_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect::<Vec<_>>())
        .unwrap_or_default();
    in_path.into_iter().chain([local]).find(|p| p.is_file())
}

/// A test cannot run here (`why`: a missing tool or `/dev/fuse`). Under CI (`CI=true`) that fails
/// the run, since a suite that silently did not run proves nothing; elsewhere it prints one plain
/// `SKIP:` line and the caller returns.
pub fn skip(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why} (CI=true: a missing tool or /dev/fuse fails the run instead of skipping)");
    }
    println!("SKIP: {why}");
}

/// Why FUSE cannot be used here, if it cannot.
pub fn fuse_unusable() -> Option<String> {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        Ok(_) => None,
        Err(e) => Some(format!("/dev/fuse is not usable ({e})")),
    }
}

fn is_mounted(dir: &Path) -> bool {
    let want = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.split(' ').nth(4) == Some(want.as_str())))
        .unwrap_or(false)
}

/// A running `watos-image mount`; dropping it unmounts (SIGTERM) and reaps the process.
pub struct Mount {
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Mount {
    /// Start `watos-image mount ARGS... DIR` and wait until DIR is a mount point.
    pub fn start(args: &[&str], dir: &Path) -> Mount {
        let dir = dir.canonicalize().expect("mount dir exists");
        let child = Command::new(BIN)
            .arg("mount")
            .args(args)
            .arg(&dir)
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn watos-image mount");
        let mut m = Mount { dir, child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !is_mounted(&m.dir) {
            if let Some(status) = m.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                m.child = None;
                panic!("watos-image mount exited before mounting: {status}");
            }
            assert!(Instant::now() < deadline, "{} was not mounted within 30 s", m.dir.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    /// Ask the tool to unmount (as Ctrl-C would) and return its exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.stop_inner().expect("mount process")
    }

    fn stop_inner(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // Safety: kill(2) on a pid we spawned and have not reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let status = child.wait().expect("wait for watos-image mount");
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        Some(status)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Run an external command in `cwd`, returning whether it succeeded and its combined output.
pub fn run_in(cwd: &Path, cmd: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd).args(args).current_dir(cwd).output().expect("run external tool");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}
