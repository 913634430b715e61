//! The storage stack a FUSE mount talks to: the image's filesystem behind a filesystem server,
//! under a VFS server, both on the in-process IPC model.
//!
//! Design: exactly the whole-stack harness's wiring (testing/stack) minus the block cache (the image
//! file is the disk):
//!
//! ```text
//! FUSE adapter ─(vfs protocol)─► VfsServer(Vfs + RemoteFs) ─(filesystem protocol)─► FsServer(image fs)
//! ```
//!
//! Every arrow is a postcard-encoded call through `protocol::local::LocalIpc` with checked leases, so
//! a FUSE request runs the VFS's resolution, descriptor table and metadata cache and the filesystem
//! server's dispatch, as an application's request does under WATOS. [`Backend::close`] ends both
//! servers and takes the image back to commit it.
//!
//! `LocalIpc` is single-threaded (`Rc<RefCell<_>>`): every clone of it and of the server handle
//! lives inside one [`Backend`], which is only ever used behind the adapter's mutex; see the Safety
//! note on the `Send` impl.

use std::cell::RefCell;
use std::rc::Rc;

use protocol::api::filesystem::{FsServer, Service};
use protocol::api::vfs as vfs_api;
use protocol::fs::{Capabilities, DirEntry, FileSystem, FsStats, NewNode, NodeId, SetAttr, Stat, TxId};
use protocol::ipc::{Incoming, Server, TaskId};
use protocol::local::LocalIpc;
use protocol::{Error, Result};
use vfs::{RemoteFs, Vfs, VfsServer};

use crate::image::ImageFs;
use crate::paths::ToolResult;

/// An owned image filesystem as a plain `FileSystem` (what `FsServer` needs).
pub struct Owned(pub Box<dyn ImageFs>);

impl FileSystem for Owned {
    fn root(&self) -> NodeId {
        self.0.root()
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn lookup(&mut self, dir: NodeId, name: &str) -> Result<Stat> {
        self.0.lookup(dir, name)
    }
    fn getattr(&mut self, node: NodeId) -> Result<Stat> {
        self.0.getattr(node)
    }
    fn setattr(&mut self, node: NodeId, attr: SetAttr) -> Result<Stat> {
        self.0.setattr(node, attr)
    }
    fn read(&mut self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.0.read(node, offset, buf)
    }
    fn write(&mut self, node: NodeId, offset: u64, data: &[u8]) -> Result<usize> {
        self.0.write(node, offset, data)
    }
    fn create(&mut self, dir: NodeId, name: &str, node: &NewNode) -> Result<Stat> {
        self.0.create(dir, name, node)
    }
    fn unlink(&mut self, dir: NodeId, name: &str) -> Result<()> {
        self.0.unlink(dir, name)
    }
    fn rmdir(&mut self, dir: NodeId, name: &str) -> Result<()> {
        self.0.rmdir(dir, name)
    }
    fn rename(&mut self, from_dir: NodeId, from: &str, to_dir: NodeId, to: &str) -> Result<()> {
        self.0.rename(from_dir, from, to_dir, to)
    }
    fn readdir(&mut self, dir: NodeId, cookie: u64, max: usize) -> Result<Vec<DirEntry>> {
        self.0.readdir(dir, cookie, max)
    }
    fn fsync(&mut self, node: NodeId) -> Result<()> {
        self.0.fsync(node)
    }
    fn sync(&mut self) -> Result<()> {
        self.0.sync()
    }
    fn statfs(&mut self) -> Result<FsStats> {
        self.0.statfs()
    }
    fn open(&mut self, node: NodeId) -> Result<()> {
        self.0.open(node)
    }
    fn release(&mut self, node: NodeId) -> Result<()> {
        self.0.release(node)
    }
    fn link(&mut self, node: NodeId, dir: NodeId, name: &str) -> Result<Stat> {
        self.0.link(node, dir, name)
    }
    fn readlink(&mut self, node: NodeId) -> Result<String> {
        self.0.readlink(node)
    }
    fn begin_transaction(&mut self) -> Result<TxId> {
        self.0.begin_transaction()
    }
    fn commit_transaction(&mut self, tx: TxId) -> Result<()> {
        self.0.commit_transaction(tx)
    }
    fn abort_transaction(&mut self, tx: TxId) -> Result<()> {
        self.0.abort_transaction(tx)
    }
    fn select_transaction(&mut self, tx: Option<TxId>) -> Result<()> {
        self.0.select_transaction(tx)
    }
    fn read_batch(&mut self, reads: &[(NodeId, u64, u32)], out: &mut [u8]) -> Result<Vec<u32>> {
        self.0.read_batch(reads, out)
    }
    fn generation(&self) -> u64 {
        self.0.generation()
    }
}

type FsService = Service<FsServer<Owned>>;

/// The filesystem server as registered with `LocalIpc`; the handle lets us take the image back.
struct SharedServer(Rc<RefCell<FsService>>);

impl Server for SharedServer {
    fn handle(&mut self, msg: &[u8], cx: &mut Incoming<'_, '_>, reply: &mut [u8]) -> Result<usize> {
        self.0.borrow_mut().handle(msg, cx, reply)
    }
}

/// A server whose start-up failed: every call gets the error it failed with (a crashed task).
struct Failed(Error);

impl Server for Failed {
    fn handle(&mut self, _: &[u8], _: &mut Incoming<'_, '_>, _: &mut [u8]) -> Result<usize> {
        Err(self.0)
    }
}

/// The vfs server's start-up: the image's filesystem server mounted at `/`.
fn start_vfs(ipc: &LocalIpc) -> Result<Box<dyn Server>> {
    let root = RemoteFs::connect(ipc.clone(), ipc.lookup("fs")?)?;
    Ok(Box::new(vfs_api::Service(VfsServer::new(Vfs::new(Box::new(root))))))
}

/// The running stack and the adapter's connection to its vfs server.
pub struct Backend {
    /// The adapter's vfs client: one process, whose descriptor table holds every open file.
    pub vfs: vfs_api::Client<LocalIpc>,
    ipc: LocalIpc,
    vfs_task: TaskId,
    server: Rc<RefCell<FsService>>,
}

// Safety: the only non-`Send` parts are `Rc`s (LocalIpc's registry, the server handle). Every clone
// of them is reachable only from this value (the registry holds the servers, and they hold only ipc
// handles into the same registry; nothing is handed out), so moving the value moves all of them
// together, and the adapter only touches it under a `Mutex`, one thread at a time.
unsafe impl Send for Backend {}

impl Backend {
    /// Serve `fs` by a filesystem server, start a vfs server over it, and connect as a client.
    pub fn start(fs: Box<dyn ImageFs>) -> ToolResult<Backend> {
        let ipc = LocalIpc::new();
        let server = Rc::new(RefCell::new(Service(FsServer::new(Owned(fs)))));
        let handle = server.clone();
        ipc.spawn("fs", Box::new(move |_| Box::new(SharedServer(handle.clone()))))
            .map_err(|e| format!("starting the filesystem server: {e}"))?;
        let vfs_task = ipc
            .spawn("vfs", Box::new(|ipc| start_vfs(&ipc).unwrap_or_else(|e| Box::new(Failed(e)))))
            .map_err(|e| format!("starting the vfs server: {e}"))?;
        let me = ipc.spawn_client("fuse").map_err(|e| format!("registering the FUSE client: {e}"))?;
        let vfs = vfs_api::Client::new(ipc.as_task(me), vfs_task);
        vfs.stats().map_err(|e| format!("starting the vfs server: {e}"))?;
        Ok(Backend { vfs, ipc, vfs_task, server })
    }

    /// Close every descriptor, end both servers, and take the image back to commit and close it.
    pub fn close(self) -> ToolResult<()> {
        let Backend { vfs, ipc, vfs_task, server } = self;
        // Closing releases every node the VFS held open (unlinked files are freed now).
        let exited = vfs.exit();
        drop(vfs);
        // The vfs server holds ipc handles into the registry that holds it: end it to break the cycle.
        let killed = ipc.kill(vfs_task.index);
        drop(ipc);
        let fs = match Rc::try_unwrap(server) {
            Ok(cell) => cell.into_inner().0.fs.0,
            Err(_) => return Err("the filesystem server is still referenced; image not committed".into()),
        };
        let closed = fs.close();
        exited.map_err(|e| format!("closing the open files: {e}"))?;
        killed.map_err(|e| format!("stopping the vfs server: {e}"))?;
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::api::vfs::OpenFlags;
    use protocol::fs::FileType;

    #[test]
    fn the_stack_round_trips_and_gives_the_image_back() {
        let b = Backend::start(Box::new(memfs::MemFs::default())).unwrap();
        let root = b.vfs.open("/", OpenFlags::READ | OpenFlags::DIRECTORY, 0).unwrap();
        let st = b.vfs.makeat(root, "f", NewNode::new(FileType::File, 0o644)).unwrap();
        let f = b.vfs.openat(root, "f", OpenFlags::READ | OpenFlags::WRITE, 0).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        assert_eq!(b.vfs.pwrite(f, 10, &data).unwrap() as usize, data.len());
        let mut back = vec![0u8; data.len() + 10];
        let req = vfs_api::ReadReq { fd: f, offset: 0, len: back.len() as u32 };
        assert_eq!(b.vfs.batch_read(vec![req], &mut back).unwrap(), [data.len() as u32 + 10]);
        assert_eq!(&back[10..], &data[..]);
        assert_eq!(b.vfs.statat(root, "f", false).unwrap().ino, st.ino);
        assert_eq!(b.vfs.statat(root, "missing", false), Err(Error::NotFound), "errors cross both protocols");
        // Open descriptors do not keep the image from being taken back.
        b.close().unwrap();
    }
}
