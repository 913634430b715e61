//! Test helpers: a memfs shared with the test (so the test can look behind the VFS) and instrumented.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use memfs::MemFs;
use protocol::api::grants::{DirectGrant, Grants};
use protocol::fs::*;
use protocol::ipc::TaskId;
use protocol::{Error, Result};
use vfs::Vfs;

/// Counters and switches a test can reach after handing the filesystem to the VFS.
#[derive(Default)]
pub struct Probe {
    pub opens: Cell<u32>,
    pub releases: Cell<u32>,
    pub lookups: Cell<u32>,
    pub generation: Cell<u64>,
    pub no_transactions: Cell<bool>,
    /// The direct-read grants, as the server behind a `RemoteFs` would keep them; `grant_direct`
    /// answers `NotSupported` while `no_grants`.
    pub grants: RefCell<Grants>,
    pub no_grants: Cell<bool>,
}

/// The task the fake filesystem server runs as, and the vfs that asks it for grants.
pub const FS_SERVER: TaskId = TaskId { index: 3, generation: 1 };
pub const VFS_TASK: TaskId = TaskId { index: 4, generation: 1 };

/// memfs behind `Rc<RefCell<_>>` plus a [`Probe`].
#[derive(Clone)]
pub struct Shared {
    pub fs: Rc<RefCell<MemFs>>,
    pub probe: Rc<Probe>,
}

impl Shared {
    pub fn new() -> Self {
        let probe = Probe::default();
        probe.grants.borrow_mut().set_granter(Box::new(|t| t == VFS_TASK));
        Shared { fs: Rc::new(RefCell::new(MemFs::default())), probe: Rc::new(probe) }
    }
    pub fn boxed(&self) -> Box<dyn FileSystem> {
        Box::new(self.clone())
    }
}

impl FileSystem for Shared {
    fn root(&self) -> NodeId {
        self.fs.borrow().root()
    }
    fn capabilities(&self) -> Capabilities {
        let mut c = self.fs.borrow().capabilities();
        c.transactions &= !self.probe.no_transactions.get();
        c
    }
    fn lookup(&mut self, dir: NodeId, name: &str) -> Result<Stat> {
        self.probe.lookups.set(self.probe.lookups.get() + 1);
        self.fs.borrow_mut().lookup(dir, name)
    }
    fn getattr(&mut self, node: NodeId) -> Result<Stat> {
        self.fs.borrow_mut().getattr(node)
    }
    fn setattr(&mut self, node: NodeId, attr: SetAttr) -> Result<Stat> {
        self.fs.borrow_mut().setattr(node, attr)
    }
    fn read(&mut self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.fs.borrow_mut().read(node, offset, buf)
    }
    fn write(&mut self, node: NodeId, offset: u64, data: &[u8]) -> Result<usize> {
        self.fs.borrow_mut().write(node, offset, data)
    }
    fn create(&mut self, dir: NodeId, name: &str, node: &NewNode) -> Result<Stat> {
        self.fs.borrow_mut().create(dir, name, node)
    }
    fn unlink(&mut self, dir: NodeId, name: &str) -> Result<()> {
        self.fs.borrow_mut().unlink(dir, name)
    }
    fn rmdir(&mut self, dir: NodeId, name: &str) -> Result<()> {
        self.fs.borrow_mut().rmdir(dir, name)
    }
    fn rename(&mut self, fd: NodeId, f: &str, td: NodeId, t: &str) -> Result<()> {
        self.fs.borrow_mut().rename(fd, f, td, t)
    }
    fn readdir(&mut self, dir: NodeId, cookie: u64, max: usize) -> Result<Vec<DirEntry>> {
        self.fs.borrow_mut().readdir(dir, cookie, max)
    }
    fn fsync(&mut self, node: NodeId) -> Result<()> {
        self.fs.borrow_mut().fsync(node)
    }
    fn sync(&mut self) -> Result<()> {
        self.fs.borrow_mut().sync()
    }
    fn statfs(&mut self) -> Result<FsStats> {
        self.fs.borrow_mut().statfs()
    }
    fn open(&mut self, node: NodeId) -> Result<()> {
        self.probe.opens.set(self.probe.opens.get() + 1);
        self.fs.borrow_mut().open(node)
    }
    fn release(&mut self, node: NodeId) -> Result<()> {
        self.probe.releases.set(self.probe.releases.get() + 1);
        self.fs.borrow_mut().release(node)
    }
    fn link(&mut self, node: NodeId, dir: NodeId, name: &str) -> Result<Stat> {
        self.fs.borrow_mut().link(node, dir, name)
    }
    fn readlink(&mut self, node: NodeId) -> Result<String> {
        self.fs.borrow_mut().readlink(node)
    }
    fn begin_transaction(&mut self) -> Result<TxId> {
        if self.probe.no_transactions.get() {
            return Err(Error::NotSupported);
        }
        self.fs.borrow_mut().begin_transaction()
    }
    fn commit_transaction(&mut self, tx: TxId) -> Result<()> {
        self.fs.borrow_mut().commit_transaction(tx)
    }
    fn abort_transaction(&mut self, tx: TxId) -> Result<()> {
        self.fs.borrow_mut().abort_transaction(tx)
    }
    fn select_transaction(&mut self, tx: Option<TxId>) -> Result<()> {
        self.fs.borrow_mut().select_transaction(tx)
    }
    fn generation(&self) -> u64 {
        self.probe.generation.get()
    }
    fn grant_direct(&mut self, client: TaskId, node: NodeId) -> Result<DirectGrant> {
        if self.probe.no_grants.get() {
            return Err(Error::NotSupported);
        }
        let handle = self.probe.grants.borrow_mut().grant(VFS_TASK, client, node)?;
        Ok(DirectGrant { server: FS_SERVER, handle })
    }
    fn revoke_direct(&mut self, handle: u64) -> Result<()> {
        self.probe.grants.borrow_mut().revoke(VFS_TASK, handle)
    }
}

pub const P1: TaskId = TaskId { index: 10, generation: 1 };
pub const P2: TaskId = TaskId { index: 11, generation: 1 };

/// A VFS over a fresh shared memfs.
pub fn setup() -> (Vfs, Shared) {
    let root = Shared::new();
    (Vfs::new(root.boxed()), root)
}

/// Create `path` with `data` and close it.
pub fn put(v: &mut Vfs, path: &str, data: &[u8]) {
    use protocol::api::vfs::OpenFlags as O;
    let fd = v.open(P1, path, O::WRITE | O::CREATE | O::TRUNCATE, 0o644).unwrap();
    assert_eq!(v.write(P1, fd, data).unwrap(), data.len());
    v.close(P1, fd).unwrap();
}

/// The whole content of `path`.
pub fn get(v: &mut Vfs, path: &str) -> Result<Vec<u8>> {
    use protocol::api::vfs::OpenFlags as O;
    let fd = v.open(P1, path, O::READ, 0)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 1000];
    loop {
        let n = v.read(P1, fd, &mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    v.close(P1, fd)?;
    Ok(out)
}

/// Every name in directory `path`, following cookies page by page.
pub fn names(v: &mut Vfs, path: &str, page: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cookie = 0;
    loop {
        let entries = v.readdir(path, cookie, page).unwrap();
        let Some(last) = entries.last() else { break };
        cookie = last.next_cookie;
        out.extend(entries.into_iter().map(|e| e.name));
    }
    out
}
