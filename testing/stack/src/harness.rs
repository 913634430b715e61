//! [`Stack`]: the whole storage stack wired in one process over the in-memory IPC transport.
//!
//! ```text
//! app (vfs::Client) ─► vfs server (Vfs + RemoteFs per mount)
//!   ├─ /     ─► wfs server (Wfs<RemoteBlockDevice>) ─► blockcache server "wfs-cache" ─► SharedDisk
//!   ├─ /fat  ─► fat server (FatFs<RemoteBlockDevice>) ─► blockcache server "fat-cache" ─► SharedDisk
//!   └─ /mem  ─► memfs server (MemFs)
//! supervisor server: list and restart any of them
//! ```
//!
//! Design: every arrow is a real encoded call through [`LocalIpc`] with leases for the data, so every
//! request path of the product runs here. Each server is spawned from a factory (its "image"), so a
//! restart re-creates it the way the supervisor does under WATOS: cache servers re-attach to their disk
//! (losing dirty blocks), filesystem servers re-mount from the disk (losing uncommitted changes), the
//! vfs server re-builds its mount table (losing descriptors). Servers find each other by name at
//! start, as they do from the initrd manifest. Disks are formatted before the servers start, with the
//! mount-point directories already committed, so the mount table never depends on uncommitted state.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use blockcache::{BlockCache, Config};
use fat::FatFs;
use memfs::MemFs;
use protocol::api::filesystem::FsServer;
use protocol::api::{blockcache as bc_api, filesystem, supervisor as sup_api, vfs as vfs_api};
use protocol::fs::{FileSystem, FileType, FixedClock, NewNode, Timespec};
use protocol::ipc::{Incoming, Server, TaskId};
use protocol::local::{Factory, LocalIpc};
use protocol::{Error, Result};
use vfs::{RemoteFs, Vfs, VfsServer};
use wfs::Wfs;

use crate::supervisor::supervisor_server;
use crate::SharedDisk;
use blockcache::{CacheServer, RemoteBlockDevice};

/// The servers of the stack: the supervisor model's services (every other task is an app).
const SERVICES: [&str; 6] = ["wfs-cache", "wfs", "fat-cache", "fat", "memfs", "vfs"];

/// How to build a stack.
#[derive(Debug, Clone, Copy)]
pub struct StackConfig {
    /// Size of the WFS disk in sectors.
    pub wfs_sectors: u64,
    /// Size of the FAT disk in sectors; `None` leaves FAT out.
    pub fat_sectors: Option<u64>,
    /// Mount a memfs server at /mem.
    pub memfs: bool,
    /// Configuration of both block caches.
    pub cache: Config,
}

impl Default for StackConfig {
    /// 16 MiB WFS, 8 MiB FAT, memfs, 4 MiB caches with read-ahead.
    fn default() -> Self {
        StackConfig { wfs_sectors: 32 * 1024, fat_sectors: Some(16 * 1024), memfs: true, cache: Config::new(1024) }
    }
}

/// A server that failed to start: every call gets the error it failed with (a crashed task).
struct Failed(Error);

impl Server for Failed {
    fn handle(&mut self, _: &[u8], _: &mut Incoming<'_, '_>, _: &mut [u8]) -> Result<usize> {
        Err(self.0)
    }
}

fn clock() -> Box<FixedClock> {
    Box::new(FixedClock(Timespec::new(1_700_000_000, 0)))
}

fn or_failed(r: Result<Box<dyn Server>>) -> Box<dyn Server> {
    r.unwrap_or_else(|e| Box::new(Failed(e)))
}

fn cache_factory(disk: SharedDisk, cfg: Config) -> Factory {
    Box::new(move |_| {
        or_failed(
            BlockCache::new(disk.clone(), cfg)
                .map(|c| Box::new(bc_api::Service(CacheServer::new(c))) as Box<dyn Server>),
        )
    })
}

/// A filesystem server whose granter is the task called `vfs`: it alone grants direct reads and
/// makes the operations outside `filesystem::OPEN_OPS`.
fn fs_service<F: FileSystem + 'static>(ipc: &LocalIpc, fs: F) -> Box<dyn Server> {
    let ipc = ipc.clone();
    // The vfs's slot, as the vfs server checks the supervisor's: an incarnation restarted in the
    // middle of a call runs that call to its end here (the kernel would have ended it).
    let vfs = move |caller: TaskId| ipc.lookup("vfs").is_ok_and(|v| v.index == caller.index);
    Box::new(filesystem::FsService(FsServer::new(fs).with_granter(Box::new(vfs))))
}

/// Connect to the cache server called `cache` as the task `ipc` speaks for.
fn remote_disk(ipc: &LocalIpc, cache: &str) -> Result<RemoteBlockDevice<LocalIpc>> {
    RemoteBlockDevice::connect(ipc.clone(), ipc.lookup(cache)?)
}

fn remote_fs(ipc: &LocalIpc, name: &str) -> Result<Box<dyn FileSystem>> {
    Ok(Box::new(RemoteFs::connect(ipc.clone(), ipc.lookup(name)?)?))
}

/// The current vfs server, reachable outside calls. `LocalIpc` has no idle time (a call runs to the
/// end and nothing runs between calls), so a test's notification waiter stands in for the time the
/// app sleeps and the server works: it runs the server's deferred asynchronous requests through
/// [`Stack::vfs_idle`], which returns the notifications the kernel would deliver.
#[derive(Clone, Default)]
pub struct VfsHandle(Rc<RefCell<Option<Rc<RefCell<VfsServer>>>>>);

/// The vfs server as `LocalIpc` serves it, shared with its [`VfsHandle`].
struct SharedVfs(Rc<RefCell<VfsServer>>);

impl Server for SharedVfs {
    fn handle(&mut self, msg: &[u8], cx: &mut Incoming<'_, '_>, reply: &mut [u8]) -> Result<usize> {
        self.0.borrow_mut().serve(msg, cx, reply)
    }
}

/// The vfs server's start-up: mount every filesystem server that exists.
fn start_vfs(ipc: &LocalIpc, handle: &VfsHandle) -> Result<Box<dyn Server>> {
    let mut v = Vfs::new(remote_fs(ipc, "wfs")?);
    for (name, at) in [("fat", "/fat"), ("memfs", "/mem")] {
        if ipc.lookup(name).is_ok() {
            v.mount(at, remote_fs(ipc, name)?)?;
        }
    }
    let supervisor = ipc.lookup("supervisor")?.index;
    let server = Rc::new(RefCell::new(VfsServer::new(v).with_supervisor(supervisor)));
    *handle.0.borrow_mut() = Some(server.clone());
    Ok(Box::new(SharedVfs(server)))
}

/// The whole stack: the IPC registry with every server in it, and the disks under the caches. Servers
/// are addressed by name ([`Stack::id`] gives the current id, generation included).
pub struct Stack {
    pub ipc: LocalIpc,
    pub wfs_disk: SharedDisk,
    pub fat_disk: Option<SharedDisk>,
    pub config: StackConfig,
    pub vfs: VfsHandle,
}

/// An application process: its task id and its vfs client.
pub struct App {
    pub id: TaskId,
    pub vfs: vfs_api::Client<LocalIpc>,
}

impl Stack {
    pub fn new(config: StackConfig) -> Result<Stack> {
        let ipc = LocalIpc::new();
        let wfs_disk = SharedDisk::new(config.wfs_sectors);
        {
            let mut fs = Wfs::format(wfs_disk.clone(), &wfs::FormatOptions::default(), clock())?;
            let root = fs.root();
            for dir in ["fat", "mem"] {
                fs.create(root, dir, &NewNode::new(FileType::Directory, 0o755))?;
            }
            fs.unmount()?;
        }
        ipc.spawn("wfs-cache", cache_factory(wfs_disk.clone(), config.cache))?;
        ipc.spawn(
            "wfs",
            Box::new(|ipc| {
                or_failed(
                    remote_disk(&ipc, "wfs-cache").and_then(|d| Wfs::mount(d, clock())).map(|fs| fs_service(&ipc, fs)),
                )
            }),
        )?;
        let fat_disk = match config.fat_sectors {
            Some(sectors) => {
                let disk = SharedDisk::new(sectors);
                FatFs::format(disk.clone(), &fat::FormatOptions::default(), clock())?.unmount()?;
                ipc.spawn("fat-cache", cache_factory(disk.clone(), config.cache))?;
                ipc.spawn(
                    "fat",
                    Box::new(|ipc| {
                        or_failed(
                            remote_disk(&ipc, "fat-cache")
                                .and_then(|d| FatFs::mount(d, clock()))
                                .map(|fs| fs_service(&ipc, fs)),
                        )
                    }),
                )?;
                Some(disk)
            }
            None => None,
        };
        if config.memfs {
            ipc.spawn("memfs", Box::new(|ipc| fs_service(&ipc, MemFs::new(clock()))))?;
        }
        ipc.spawn("supervisor", Box::new(|ipc| Box::new(supervisor_server(ipc, &SERVICES))))?;
        let vfs = VfsHandle::default();
        let handle = vfs.clone();
        ipc.spawn("vfs", Box::new(move |ipc| or_failed(start_vfs(&ipc, &handle))))?;
        Ok(Stack { ipc, wfs_disk, fat_disk, config, vfs })
    }

    /// Give the vfs server idle time: it runs its queued asynchronous requests. Returns the
    /// notifications it posted (task, bits); empty if it had nothing to do.
    pub fn vfs_idle(&self) -> Vec<(TaskId, u64)> {
        let server = self.vfs.0.borrow().clone();
        server.and_then(|s| s.borrow_mut().run_aio()).unwrap_or_default()
    }

    /// The current id of the server called `name`.
    pub fn id(&self, name: &str) -> Result<TaskId> {
        self.ipc.lookup(name)
    }

    /// Start an application process talking to the vfs server.
    pub fn app(&self, name: &str) -> Result<App> {
        let id = self.ipc.spawn_client(name)?;
        Ok(App { id, vfs: vfs_api::Client::new(self.ipc.as_task(id), self.id("vfs")?) })
    }

    /// A client of the supervisor, calling as `app`.
    pub fn supervisor(&self, app: &App) -> Result<sup_api::Client<LocalIpc>> {
        Ok(sup_api::Client::new(self.ipc.as_task(app.id), self.id("supervisor")?))
    }

    /// A direct client of a blockcache server (for stats and raw-request tests).
    pub fn cache_client(&self, name: &str) -> Result<bc_api::Client<LocalIpc>> {
        Ok(bc_api::Client::new(self.ipc.clone(), self.id(name)?))
    }

    /// An application crashed: the kernel kills it and notifies the supervisor, which tells the vfs
    /// server to close what the process held. Returns the number of descriptors closed.
    pub fn crash_app(&self, app: &App) -> Result<u32> {
        self.ipc.kill(app.id.index)?;
        let as_supervisor = self.ipc.as_task(self.id("supervisor")?);
        vfs_api::Client::new(as_supervisor, self.id("vfs")?).process_exited(app.id)
    }

    /// Restart the server called `name` from its image; returns its new id.
    pub fn restart(&self, name: &str) -> Result<TaskId> {
        self.ipc.restart(self.id(name)?.index)
    }

    /// Mount a copy of the WFS disk as it is now, bypassing the cache: what a power cut would leave.
    pub fn durable_wfs(&self) -> Result<Wfs<blockdev::RamDisk>> {
        Wfs::mount(self.wfs_disk.snapshot(), clock())
    }

    /// Names of the running servers.
    pub fn servers(&self) -> alloc::vec::Vec<String> {
        self.ipc.tasks().into_iter().filter(|t| t.alive).map(|t| t.name).collect()
    }
}

/// Sector count helper for configs given in MiB.
pub const fn mib(n: u64) -> u64 {
    n * 1024 * 1024 / blockdev::SECTOR_SIZE as u64
}
