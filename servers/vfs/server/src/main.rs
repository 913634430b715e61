//! vfs-server: the path-level file interface for applications, over the filesystem servers.
//!
//! Design: WFS (`wfs-server`) is the root and FAT (`fat-server`) is mounted at `/fat`, each through
//! `vfs::RemoteFs`, a `FileSystem` whose every operation is a call to that server (so a filesystem
//! server restart shows up here as `ServerRestarted` and RemoteFs re-finds it by name). Descriptor
//! tables are per calling process (the kernel names the caller); the supervisor (init) reports every
//! process death (`process_exited`), and the descriptors and transactions of the dead process are
//! closed. On `STOP` it exits; it owns no disk state, and the filesystem servers are stopped
//! separately. Queued asynchronous requests run when no call is waiting (`transport::serve_idle`),
//! and their processes are notified. Every request is timed with the TSC (`VfsServer::serve`).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use libwatos::println;
use libwatos::service::{self, STOP};
use libwatos::transport::{self, KernelTransport};
use protocol::fs::FileSystem;
use protocol::Result;
use vfs::{RemoteFs, Vfs, VfsServer};

libwatos::entry!(main);

fn remote(name: &str) -> Result<Box<dyn FileSystem>> {
    let t = KernelTransport::new();
    let id = t.lookup(name)?;
    Ok(Box::new(RemoteFs::connect(t, id)?))
}

fn mount_all() -> Result<Vfs> {
    let mut v = Vfs::new(remote("wfs-server")?);
    v.mount("/fat", remote("fat-server")?)?;
    Ok(v)
}

fn main() -> i64 {
    let name = service::own_name();
    let v = match mount_all() {
        Ok(v) => v,
        Err(e) => {
            println!("{name}: cannot mount the filesystems: {e:?}");
            return 2;
        }
    };
    for (path, _) in v.mounts() {
        println!("{name}: mounted {path}");
    }
    // Only the supervisor may report deaths (`process_exited`); it stays the supervisor across its
    // own restarts, so its slot is what counts.
    // Requests are timed with the TSC; this first rate reading is the reference `timing` replies
    // measure its rate from.
    libwatos::tsc::hz();
    let mut server = VfsServer::new(v).with_clock(Box::new(libwatos::tsc::Tsc));
    match service::supervisor_task() {
        Ok(id) => server = server.with_supervisor(transport::from_kernel(id).index),
        Err(e) => println!("{name}: no supervisor ({e:?}): no process deaths will be reported"),
    }
    println!("{name}: serving");
    // Asynchronous requests run whenever no call is waiting (see vfs::VfsServer::run_aio).
    match transport::serve_idle(&mut server, STOP, |s| s.run_aio()) {
        Ok(()) => {
            // Which path file data took: forwarded leases (one copy) or the bounce buffer (two).
            let (forwarded, bounced) = libwatos::forward::counts();
            println!("{name}: stopped ({forwarded} reads/writes forwarded, {bounced} bounced)");
            0
        }
        Err(e) => {
            println!("{name}: receive failed: {e:?}");
            1
        }
    }
}
