//! Block I/O for the trees: checksum-verified reads with ditto fallback, a bounded cache of
//! decoded nodes, the cache of verified file data (`datacache`; every write here drops what it
//! overwrites), and the free rules for blocks that leave the tree.
//!
//! Design: a node is only ever read through a [`BlockPtr`], so every read is verified against the
//! checksum and birth txid its parent recorded; if the first copy fails, the ditto copy is tried,
//! and only when every copy fails does the caller see `Error::Checksum` naming the first copy.
//! Committed blocks are immutable until freed, so the cache may key decoded nodes by address as long
//! as it also checks the pointer's crc and birth (a reused address has a new birth).

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec;

use blockdev::BlockDevice;
use protocol::{Error, Result};

use crate::allocator::Allocator;
use crate::btree::Node;
use crate::datacache::{DataCache, DATA_CACHE_BLOCKS};
use crate::ondisk::{BlockPtr, Checksum, BLOCK_SIZE, SECTORS_PER_BLOCK};

/// Decoded nodes kept in memory; the cache is dropped wholesale when it grows past this.
const CACHE_LIMIT: usize = 8192;

pub struct Store<D: BlockDevice> {
    pub dev: D,
    pub alloc: Allocator,
    cache: BTreeMap<u64, (u32, u64, Arc<Node>)>,
    /// File data blocks verified when they were read from the device (see `datacache`).
    pub data: DataCache,
    /// The sequential read under way: inode, the offset it continues at, and bytes read so far.
    stream: (u64, u64, u64),
    /// The transaction being built; blocks written now carry this birth.
    pub txid: u64,
    /// Txid of the newest snapshot (0: none). Blocks born at or before it may be shared.
    pub snap_txid: u64,
    /// Write every tree node twice.
    pub ditto: bool,
    /// The image's block checksum.
    pub csum: Checksum,
    /// Upper bound of the nodes the next commit writes (each needs one block per copy).
    pub dirty_nodes: u64,
    /// Blocks of the whole space map: a commit may rewrite all of them.
    pub map_blocks: u64,
    /// While an operation runs: blocks of the open transaction it released. They are freed when
    /// it succeeds, not at once, so the operation cannot reuse (overwrite) a block that the state
    /// before it references, which a failed operation returns to.
    pub op_frees: Option<alloc::vec::Vec<u64>>,
    /// While an explicit transaction is open: the txid of the commit both states started from.
    /// Blocks born at or before it may be in both trees, so neither state frees them.
    pub pin_txid: u64,
    /// Pinned blocks (see `pin_txid`) that the state being changed released, to be freed once the
    /// transaction ends (for the main state: its commits record them as free already).
    pub pinned: alloc::vec::Vec<u64>,
    /// Dirty nodes of the state not being changed (its commit needs blocks too).
    pub parked_dirty_nodes: u64,
}

impl<D: BlockDevice> Store<D> {
    pub fn new(dev: D, alloc: Allocator, txid: u64, ditto: bool, csum: Checksum, map_blocks: u64) -> Self {
        Store {
            dev,
            alloc,
            cache: BTreeMap::new(),
            data: DataCache::new(DATA_CACHE_BLOCKS),
            stream: (0, 0, 0),
            txid,
            snap_txid: 0,
            ditto,
            csum,
            dirty_nodes: 1,
            map_blocks,
            op_frees: None,
            pin_txid: 0,
            pinned: alloc::vec::Vec::new(),
            parked_dirty_nodes: 0,
        }
    }

    fn check_addr(&self, addr: u64) -> Result<()> {
        // Block 0 and the last block are superblocks; a pointer to them is corruption.
        if addr == 0 || addr >= self.alloc.total() - 1 {
            return Err(Error::Corrupt { block: addr });
        }
        Ok(())
    }

    /// Notes a read of `len` bytes of `ino` at `off` and says whether what it reads from the device
    /// should enter the verified-data cache: not once a sequential read of one file has gone past the
    /// cache's size, as such a scan would only evict everything before any of it is read again (the
    /// first cache-full of the file stays cached).
    pub fn admit_read(&mut self, ino: u64, off: u64, len: u64) -> bool {
        let (i, next, done) = self.stream;
        let done = if i == ino && next == off { done.saturating_add(len) } else { len };
        self.stream = (ino, off.saturating_add(len), done);
        done <= (DATA_CACHE_BLOCKS * BLOCK_SIZE) as u64
    }

    /// Read whole blocks starting at `addr` without any verification.
    pub fn read_raw(&mut self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let n = buf.len().div_ceil(BLOCK_SIZE) as u64;
        if addr.checked_add(n).is_none_or(|end| end > self.alloc.total()) {
            return Err(Error::Corrupt { block: addr });
        }
        self.dev.read(addr * SECTORS_PER_BLOCK, buf)
    }

    pub fn write_raw(&mut self, addr: u64, buf: &[u8]) -> Result<()> {
        let n = buf.len().div_ceil(BLOCK_SIZE) as u64;
        if addr.checked_add(n).is_none_or(|end| end > self.alloc.total()) {
            return Err(Error::InvalidArgument);
        }
        // Whatever the device holds at these blocks from now on is not what was verified before.
        self.data.invalidate(addr, n);
        self.dev.write(addr * SECTORS_PER_BLOCK, buf)
    }

    /// Read the block `ptr` names into `buf` (one block), trying each copy until one verifies.
    pub fn read_verified(&mut self, ptr: &BlockPtr, buf: &mut [u8]) -> Result<()> {
        let mut err = Error::Checksum { block: ptr.addr };
        for addr in ptr.copies() {
            self.check_addr(addr)?;
            match self.read_raw(addr, buf) {
                Ok(()) if self.csum.of(buf) == ptr.crc => return Ok(()),
                Ok(()) => {}
                Err(e @ Error::Io { .. }) => err = e,
                Err(e) => return Err(e),
            }
        }
        if matches!(err, Error::Io { .. }) && ptr.addr2 == 0 {
            return Err(err);
        }
        Err(Error::Checksum { block: ptr.addr })
    }

    /// Load the tree node `ptr` names, checking its level when the caller knows it.
    pub fn load_node(&mut self, ptr: &BlockPtr, level: Option<u8>) -> Result<Arc<Node>> {
        if let Some((c, b, n)) = self.cache.get(&ptr.addr) {
            if *c == ptr.crc && *b == ptr.birth && level.is_none_or(|l| l == n.level()) {
                return Ok(n.clone());
            }
        }
        let mut buf = vec![0u8; BLOCK_SIZE];
        self.read_verified(ptr, &mut buf)?;
        let node = Node::decode(&buf, ptr)?;
        if level.is_some_and(|l| l != node.level()) {
            return Err(Error::Corrupt { block: ptr.addr });
        }
        let node = Arc::new(node);
        self.remember(ptr, node.clone());
        Ok(node)
    }

    /// Load the node `ptr` names for modification: its block is about to be released, so a cached
    /// copy is taken out of the cache (no clone when nothing else holds it).
    pub fn take_node(&mut self, ptr: &BlockPtr, level: Option<u8>) -> Result<Node> {
        if let Some((c, b, n)) = self.cache.remove(&ptr.addr) {
            if c == ptr.crc && b == ptr.birth && level.is_none_or(|l| l == n.level()) {
                return Ok(Arc::try_unwrap(n).unwrap_or_else(|shared| (*shared).clone()));
            }
        }
        let mut buf = vec![0u8; BLOCK_SIZE];
        self.read_verified(ptr, &mut buf)?;
        let node = Node::decode(&buf, ptr)?;
        if level.is_some_and(|l| l != node.level()) {
            return Err(Error::Corrupt { block: ptr.addr });
        }
        Ok(node)
    }

    pub fn remember(&mut self, ptr: &BlockPtr, node: Arc<Node>) {
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(ptr.addr, (ptr.crc, ptr.birth, node));
    }

    pub fn forget_cache(&mut self) {
        self.cache.clear();
        self.data.clear();
    }

    /// A block (every copy) leaves the live tree: free it according to the rules in `allocator`.
    pub fn release(&mut self, ptr: &BlockPtr) {
        for addr in ptr.copies() {
            if ptr.birth == self.txid {
                match &mut self.op_frees {
                    Some(list) => list.push(addr),
                    None => self.alloc.free_now(addr),
                }
            } else if ptr.birth > self.snap_txid.max(self.pin_txid) {
                self.alloc.free_deferred(addr);
            } else if ptr.birth > self.snap_txid {
                // Shared by both states of an open transaction.
                self.alloc.note(addr);
                self.pinned.push(addr);
            }
        }
    }

    /// Copies written per tree node.
    pub fn copies(&self) -> u64 {
        if self.ditto {
            2
        } else {
            1
        }
    }

    /// Refuse a change that could leave the next commit without blocks for its tree nodes.
    /// `extra` is what the change itself needs (data blocks, new nodes, a margin kept for deletes).
    pub fn check_room(&self, extra: u64) -> Result<()> {
        let nodes = self.dirty_nodes.saturating_add(self.parked_dirty_nodes);
        let reserve = self.copies().saturating_mul(nodes).saturating_add(self.map_blocks);
        if self.alloc.free_blocks() < reserve.saturating_add(extra) {
            return Err(Error::NoSpace);
        }
        Ok(())
    }

    /// Allocate `n` data blocks, in as few contiguous runs as the free space allows.
    pub fn alloc_data(&mut self, n: u64) -> Result<alloc::vec::Vec<u64>> {
        let mut out = alloc::vec::Vec::with_capacity(n as usize);
        while (out.len() as u64) < n {
            match self.alloc.alloc_run(n - out.len() as u64) {
                Ok((b, len)) => out.extend(b..b + len),
                Err(e) => {
                    for b in out {
                        self.alloc.free_now(b);
                    }
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    /// Allocate one block for data or a node's first copy (`region` 0) or its ditto copy (1).
    pub fn alloc(&mut self, region: usize) -> Result<u64> {
        loop {
            let b = self.alloc.alloc(region)?;
            // The superblock blocks are marked at mount, but stay defensive about them.
            if b != 0 && b != self.alloc.total() - 1 {
                return Ok(b);
            }
        }
    }
}
