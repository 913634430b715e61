//! What the FUSE adapter calls: the image's filesystem directly, or the same filesystem behind the
//! WATOS filesystem-server protocol.
//!
//! Design: in protocol mode (the default) the image's filesystem is served by `FsServer` on an
//! in-process `LocalIpc` (the model of kernel IPC the whole-stack harness uses: postcard messages,
//! checked leases) and the adapter talks to it through `vfs::RemoteFs`, exactly as the VFS talks to
//! a filesystem server under WATOS. So a FUSE mount exercises the request encoding, the lease
//! handling and the server dispatch, not just the filesystem library. Direct mode (`--direct`) skips
//! the protocol, for comparison in benchmarks.
//!
//! `LocalIpc` is single-threaded (`Rc<RefCell<_>>`): every clone of it and of the server handle
//! lives inside one [`Backend`], which is only ever used behind the adapter's mutex; see the Safety
//! note on the `Send` impl.

use std::cell::RefCell;
use std::rc::Rc;

use protocol::api::filesystem::{FsServer, Service};
use protocol::fs::{
    Capabilities, DirEntry, FileSystem, FsStats, NewNode, NodeId, SetAttr, Stat, TxId,
};
use protocol::ipc::{Incoming, Server};
use protocol::local::LocalIpc;
use protocol::Result;
use vfs::RemoteFs;

use crate::image::ImageFs;
use crate::ops::ToolResult;

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

/// Where the adapter's calls go.
pub enum Backend {
    Direct(Owned),
    Protocol { client: RemoteFs<LocalIpc>, ipc: LocalIpc, server: Rc<RefCell<FsService>> },
}

// Safety: the only non-`Send` parts are `Rc`s (LocalIpc's registry, the server handle). Every clone
// of them is reachable only from this value (the registry holds the server and the clients' ipc
// handles; nothing is handed out), so moving the value moves all of them together, and the adapter
// only touches it under a `Mutex`, one thread at a time.
unsafe impl Send for Backend {}

impl Backend {
    /// Serve `fs` over the filesystem-server protocol and connect to it as a client would.
    pub fn protocol(fs: Box<dyn ImageFs>) -> ToolResult<Backend> {
        let ipc = LocalIpc::new();
        let server = Rc::new(RefCell::new(Service(FsServer::new(Owned(fs)))));
        let handle = server.clone();
        let fs_id = ipc
            .spawn("fs", Box::new(move |_| Box::new(SharedServer(handle.clone()))))
            .map_err(|e| format!("starting the filesystem server: {e}"))?;
        let me = ipc.spawn_client("fuse").map_err(|e| format!("registering the FUSE client: {e}"))?;
        let client = RemoteFs::connect(ipc.as_task(me), fs_id).map_err(|e| format!("connecting to the filesystem server: {e}"))?;
        Ok(Backend::Protocol { client, ipc, server })
    }

    pub fn fs(&mut self) -> &mut dyn FileSystem {
        match self {
            Backend::Direct(fs) => fs,
            Backend::Protocol { client, .. } => client,
        }
    }

    /// Take the image back (ending the in-process server) and commit it.
    pub fn close(self) -> ToolResult<()> {
        match self {
            Backend::Direct(fs) => fs.0.close(),
            Backend::Protocol { client, ipc, server } => {
                drop(client);
                drop(ipc);
                match Rc::try_unwrap(server) {
                    Ok(cell) => cell.into_inner().0.fs.0.close(),
                    Err(_) => Err("the filesystem server is still referenced; image not committed".into()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::fs::FileType;

    #[test]
    fn protocol_backend_round_trips_and_gives_the_image_back() {
        let mut b = Backend::protocol(Box::new(memfs::MemFs::default())).unwrap();
        let fs = b.fs();
        let root = fs.root();
        let f = fs.create(root, "f", &NewNode::new(FileType::File, 0o644)).unwrap().ino;
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        assert_eq!(fs.write(f, 10, &data).unwrap(), data.len());
        let mut back = vec![0u8; data.len() + 10];
        assert_eq!(fs.read(f, 0, &mut back).unwrap(), data.len() + 10);
        assert_eq!(&back[10..], &data[..]);
        assert_eq!(fs.lookup(root, "missing"), Err(protocol::Error::NotFound), "errors cross the protocol");
        b.close().unwrap();
    }

    #[test]
    fn direct_backend_closes_the_image() {
        let mut b = Backend::Direct(Owned(Box::new(memfs::MemFs::default())));
        assert_eq!(b.fs().getattr(1).unwrap().kind, FileType::Directory);
        b.close().unwrap();
    }
}
