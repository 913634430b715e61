//! Mounting and the session's life: signals, unmount, and committing the image afterwards.
//!
//! Design: SIGINT, SIGTERM and SIGHUP are blocked in every thread and taken by a dedicated thread
//! with `sigwait`, which unmounts; the session loop then ends and the image is committed and closed.
//! An external `umount DIR` ends the loop the same way. Blocking (rather than a handler) means no
//! code runs in signal context.

use std::path::Path;

use fuser::{Config, MountOption, SessionACL};

use super::backend::Backend;
use super::FuseAdapter;
use crate::image::ImageFs;
use crate::paths::ToolResult;

/// Block the shutdown signals in the calling thread (and so in every thread it starts later).
fn block_shutdown_signals() -> libc::sigset_t {
    // Safety: sigset_t is plain data; sigemptyset/sigaddset initialise it, and pthread_sigmask only
    // reads the set we pass and writes nothing back (null old-set pointer).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Mount `fs` on `dir` and serve it until it is unmounted or the process is told to stop; then
/// commit and close the image.
pub fn serve(fs: Box<dyn ImageFs>, dir: &Path) -> ToolResult<()> {
    if !dir.is_dir() {
        return Err(format!("{}: mount point is not a directory", dir.display()));
    }
    let format = fs.format();
    let set = block_shutdown_signals();
    let adapter = FuseAdapter::new(Backend::start(fs)?).map_err(|e| format!("opening the root directory: {e}"))?;
    let shared = adapter.shared();
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(format!("watos-{}", format.name().to_lowercase())),
        MountOption::Subtype("watos".into()),
        MountOption::DefaultPermissions,
        MountOption::RW,
        MountOption::Dev,
        MountOption::Suid,
    ];
    // Every user may use the mount (the POSIX suites switch users); the kernel checks permissions.
    config.acl = SessionACL::All;
    let mut session = fuser::Session::new(adapter, dir, &config)
        .map_err(|e| format!("{}: FUSE mount failed: {e} (is /dev/fuse usable? are you root?)", dir.display()))?;
    let mut unmounter = session.unmount_callable();
    let shown = dir.display().to_string();
    std::thread::spawn(move || {
        let mut sig: libc::c_int = 0;
        // Safety: `set` is an initialised signal set; sigwait writes the signal number to `sig`.
        if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
            eprintln!("watos-image: signal {sig}, unmounting {shown}");
            if let Err(e) = unmounter.unmount() {
                eprintln!("watos-image: unmounting {shown} failed: {e}");
            }
        }
    });
    eprintln!(
        "watos-image: {} image mounted on {}, served through the vfs and filesystem servers",
        format.name(),
        dir.display()
    );
    let run = session.run().map_err(|e| format!("FUSE session failed: {e}"));
    let fs = shared.lock().ok().and_then(|mut g| g.take());
    let closed = match fs {
        Some(nodes) => nodes.into_backend().close(),
        None => Err("the filesystem was lost during the session".to_string()),
    };
    run?;
    closed?;
    eprintln!("watos-image: unmounted {}, image committed", dir.display());
    Ok(())
}
