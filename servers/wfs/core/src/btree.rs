//! The copy-on-write B+tree that holds every piece of WFS metadata.
//!
//! Design: one tree type, keyed by [`Key`] (object, kind, offset), with variable-length values in
//! the leaves; inodes, directory entries, extents, the orphan list and snapshot records are all items
//! in it (as in btrfs). Committed nodes are immutable. A transaction edits a tree in memory: the path
//! from the root to a changed leaf is loaded, its old blocks released (see `Store::release`) and the
//! nodes kept as `Child::Dirty`; nothing is written until commit, when `write_dirty` writes the dirty
//! nodes bottom-up into freshly allocated blocks, each child's checksum and birth going into its
//! parent's pointer. Aborting is dropping the dirty nodes. Internal entries hold a lower bound of
//! their child's keys, so no separator needs fixing when items are removed. Nodes that fall under a
//! quarter full are merged with a neighbour; empty ones are dropped.
//!
//! Untrusted input: decode checks magic, level, counts, lengths and key order, and a child must be
//! exactly one level below its parent, so a corrupt image cannot make a walk loop or recurse deeper
//! than `MAX_LEVEL`.

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use blockdev::BlockDevice;
use protocol::{Error, Result};

use crate::ondisk::{get_u16, put_u16, put_u64, BlockPtr, Key, BLOCK_SIZE};
use crate::store::Store;

pub const NODE_MAGIC: [u8; 4] = *b"WFSN";
/// Deepest tree accepted; fan-out is at least two, so this is far beyond any real device.
pub const MAX_LEVEL: u8 = 16;
const HDR: usize = 24;
const CAP: usize = BLOCK_SIZE - HDR;
const LEAF_OVERHEAD: usize = Key::SIZE + 2;
const INTERNAL_ITEM: usize = Key::SIZE + BlockPtr::SIZE;
/// Largest value an item may carry (so every leaf holds at least two items).
pub const MAX_VALUE: usize = 1600;

#[derive(Debug, Clone)]
pub enum Node {
    /// Values are shared slices, so copying a leaf (see `Child::Dirty`) allocates nothing per item.
    Leaf {
        items: Vec<(Key, Arc<[u8]>)>,
        bytes: usize,
    },
    Internal {
        level: u8,
        children: Vec<(Key, Child)>,
    },
}

#[derive(Debug, Clone)]
pub enum Child {
    Disk(BlockPtr),
    /// In memory, changed since the last commit. Shared (`Arc`) so that saving the tree before an
    /// operation is cheap: a change copies the shared nodes on its path (`Arc::make_mut`).
    Dirty(Arc<Node>),
}

impl Child {
    pub fn empty() -> Child {
        Child::Dirty(Arc::new(Node::Leaf { items: Vec::new(), bytes: 0 }))
    }

    pub fn is_dirty(&self) -> bool {
        matches!(self, Child::Dirty(_))
    }
}

impl Node {
    pub fn level(&self) -> u8 {
        match self {
            Node::Leaf { .. } => 0,
            Node::Internal { level, .. } => *level,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Node::Leaf { bytes, .. } => *bytes,
            Node::Internal { children, .. } => children.len() * INTERNAL_ITEM,
        }
    }

    /// Encode a node whose children are all on disk.
    pub fn encode(&self, birth: u64) -> Result<Vec<u8>> {
        let mut b = vec![0u8; BLOCK_SIZE];
        b[0..4].copy_from_slice(&NODE_MAGIC);
        b[4] = self.level();
        put_u64(&mut b, 16, birth);
        let mut at = HDR;
        match self {
            Node::Leaf { items, .. } => {
                put_u16(&mut b, 8, items.len() as u16);
                for (k, v) in items {
                    k.encode(&mut b[at..]);
                    put_u16(&mut b, at + Key::SIZE, v.len() as u16);
                    at += LEAF_OVERHEAD;
                    b[at..at + v.len()].copy_from_slice(v);
                    at += v.len();
                }
            }
            Node::Internal { children, .. } => {
                put_u16(&mut b, 8, children.len() as u16);
                for (k, c) in children {
                    let Child::Disk(p) = c else { return Err(Error::Corrupt { block: 0 }) };
                    k.encode(&mut b[at..]);
                    p.encode(&mut b[at + Key::SIZE..]);
                    at += INTERNAL_ITEM;
                }
            }
        }
        Ok(b)
    }

    /// Decode the node `ptr` names; every length and the key order are checked.
    pub fn decode(b: &[u8], ptr: &BlockPtr) -> Result<Node> {
        let bad = Error::Corrupt { block: ptr.addr };
        if b.len() != BLOCK_SIZE || b[0..4] != NODE_MAGIC || crate::ondisk::get_u64(b, 16) != ptr.birth {
            return Err(bad);
        }
        let level = b[4];
        let n = get_u16(b, 8) as usize;
        if level > MAX_LEVEL {
            return Err(bad);
        }
        let mut at = HDR;
        let mut prev: Option<Key> = None;
        let mut check_order = |k: Key| -> Result<()> {
            if prev.is_some_and(|p| p >= k) {
                return Err(bad);
            }
            prev = Some(k);
            Ok(())
        };
        if level == 0 {
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                if at + LEAF_OVERHEAD > BLOCK_SIZE {
                    return Err(bad);
                }
                let k = Key::decode(&b[at..]);
                let len = get_u16(b, at + Key::SIZE) as usize;
                at += LEAF_OVERHEAD;
                if at + len > BLOCK_SIZE || len > MAX_VALUE {
                    return Err(bad);
                }
                check_order(k)?;
                items.push((k, Arc::from(&b[at..at + len])));
                at += len;
            }
            Ok(Node::Leaf { items, bytes: at - HDR })
        } else {
            if n == 0 || HDR + n * INTERNAL_ITEM > BLOCK_SIZE {
                return Err(bad);
            }
            let mut children = Vec::with_capacity(n);
            for _ in 0..n {
                let k = Key::decode(&b[at..]);
                check_order(k)?;
                children.push((k, Child::Disk(BlockPtr::decode(&b[at + Key::SIZE..])?)));
                at += INTERNAL_ITEM;
            }
            Ok(Node::Internal { level, children })
        }
    }
}

/// Index of the child whose key range holds `key`.
fn route(children: &[(Key, Child)], key: &Key) -> usize {
    children.partition_point(|(k, _)| k <= key).saturating_sub(1)
}

/// Run `f` on the node behind `child`, loading it (verified) if it is on disk.
fn with_node<D: BlockDevice, R>(
    st: &mut Store<D>,
    child: &Child,
    level: Option<u8>,
    f: impl FnOnce(&mut Store<D>, &Node) -> Result<R>,
) -> Result<R> {
    match child {
        Child::Dirty(n) => f(st, n),
        Child::Disk(p) => {
            let n = st.load_node(p, level)?;
            f(st, &n)
        }
    }
}

/// Levels below the root (0 for a lone leaf).
pub fn depth<D: BlockDevice>(st: &mut Store<D>, root: &Child) -> Result<u8> {
    with_node(st, root, None, |_, n| Ok(n.level()))
}

/// Look `key` up.
pub fn get<D: BlockDevice>(st: &mut Store<D>, root: &Child, key: &Key) -> Result<Option<Vec<u8>>> {
    get_rec(st, root, key, None)
}

fn get_rec<D: BlockDevice>(st: &mut Store<D>, c: &Child, key: &Key, lvl: Option<u8>) -> Result<Option<Vec<u8>>> {
    with_node(st, c, lvl, |st, node| match node {
        Node::Leaf { items, .. } => Ok(items.binary_search_by(|(k, _)| k.cmp(key)).ok().map(|i| items[i].1.to_vec())),
        Node::Internal { level, children } => {
            let i = route(children, key);
            get_rec(st, &children[i].1, key, Some(level - 1))
        }
    })
}

/// The item with the greatest key in `lo..=key`, if any (one descent, plus a step left when the
/// routed subtree has nothing at or below `key`).
pub fn floor<D: BlockDevice>(st: &mut Store<D>, root: &Child, lo: &Key, key: &Key) -> Result<Option<(Key, Vec<u8>)>> {
    floor_rec(st, root, lo, key, None)
}

fn floor_rec<D: BlockDevice>(
    st: &mut Store<D>,
    c: &Child,
    lo: &Key,
    key: &Key,
    lvl: Option<u8>,
) -> Result<Option<(Key, Vec<u8>)>> {
    with_node(st, c, lvl, |st, node| match node {
        Node::Leaf { items, .. } => {
            let end = items.partition_point(|(k, _)| k <= key);
            Ok(items[..end].last().filter(|(k, _)| k >= lo).map(|(k, v)| (*k, v.to_vec())))
        }
        Node::Internal { level, children } => {
            let mut i = route(children, key);
            loop {
                if let Some(hit) = floor_rec(st, &children[i].1, lo, key, Some(level - 1))? {
                    return Ok(Some(hit));
                }
                // Every key left of child i is below its lower bound.
                if i == 0 || children[i].0 <= *lo {
                    return Ok(None);
                }
                i -= 1;
            }
        }
    })
}

/// Append to `out` the items with `from <= key <= to`, stopping once `out` holds `limit` items.
pub fn scan<D: BlockDevice>(
    st: &mut Store<D>,
    root: &Child,
    from: Key,
    to: Key,
    limit: usize,
    out: &mut Vec<(Key, Vec<u8>)>,
) -> Result<()> {
    scan_rec(st, root, &from, &to, limit, out, None)
}

fn scan_rec<D: BlockDevice>(
    st: &mut Store<D>,
    c: &Child,
    from: &Key,
    to: &Key,
    limit: usize,
    out: &mut Vec<(Key, Vec<u8>)>,
    lvl: Option<u8>,
) -> Result<()> {
    with_node(st, c, lvl, |st, node| {
        match node {
            Node::Leaf { items, .. } => {
                let start = items.partition_point(|(k, _)| k < from);
                for (k, v) in &items[start..] {
                    if k > to || out.len() >= limit {
                        break;
                    }
                    out.push((*k, v.to_vec()));
                }
            }
            Node::Internal { level, children } => {
                for (k, child) in &children[route(children, from)..] {
                    if k > to || out.len() >= limit {
                        break;
                    }
                    scan_rec(st, child, from, to, limit, out, Some(level - 1))?;
                }
            }
        }
        Ok(())
    })
}

/// Turn `child` into an in-memory dirty node, releasing the block it came from.
fn make_dirty<'a, D: BlockDevice>(st: &mut Store<D>, child: &'a mut Child, lvl: Option<u8>) -> Result<&'a mut Node> {
    if let Child::Disk(p) = child {
        let p = *p;
        let n = st.take_node(&p, lvl)?;
        st.release(&p);
        st.dirty_nodes += 1;
        *child = Child::Dirty(Arc::new(n));
    }
    match child {
        Child::Dirty(n) => Ok(Arc::make_mut(n)),
        Child::Disk(p) => Err(Error::Corrupt { block: p.addr }),
    }
}

/// Insert or replace `key`.
pub fn insert<D: BlockDevice>(st: &mut Store<D>, root: &mut Child, key: Key, val: Vec<u8>) -> Result<()> {
    if val.len() > MAX_VALUE {
        return Err(Error::InvalidArgument);
    }
    if let Some((k, right)) = insert_rec(st, root, key, val, None)? {
        let level = right.level() + 1;
        if level > MAX_LEVEL {
            return Err(Error::NoSpace);
        }
        let left = core::mem::replace(root, Child::empty());
        st.dirty_nodes += 1;
        *root = Child::Dirty(Arc::new(Node::Internal {
            level,
            children: vec![(Key::MIN, left), (k, Child::Dirty(right))],
        }));
    }
    Ok(())
}

type Split = Option<(Key, Arc<Node>)>;

fn insert_rec<D: BlockDevice>(
    st: &mut Store<D>,
    c: &mut Child,
    key: Key,
    val: Vec<u8>,
    lvl: Option<u8>,
) -> Result<Split> {
    let node = make_dirty(st, c, lvl)?;
    match node {
        Node::Leaf { items, bytes } => {
            match items.binary_search_by(|(k, _)| k.cmp(&key)) {
                Ok(i) => {
                    *bytes = *bytes - items[i].1.len() + val.len();
                    items[i].1 = Arc::from(val);
                }
                Err(i) => {
                    *bytes += LEAF_OVERHEAD + val.len();
                    items.insert(i, (key, Arc::from(val)));
                }
            }
            if *bytes <= CAP {
                return Ok(None);
            }
            // Split by bytes, not count, so both halves fit whatever the value sizes.
            let half = *bytes / 2;
            let (mut acc, mut m) = (0, 0);
            while m < items.len() - 1 && (acc < half || m == 0) {
                acc += LEAF_OVERHEAD + items[m].1.len();
                m += 1;
            }
            let right = items.split_off(m);
            let rb = *bytes - acc;
            *bytes = acc;
            let k = right[0].0;
            st.dirty_nodes += 1;
            Ok(Some((k, Arc::new(Node::Leaf { items: right, bytes: rb }))))
        }
        Node::Internal { level, children } => {
            let level = *level;
            let i = route(children, &key);
            if key < children[i].0 {
                children[i].0 = key;
            }
            if let Some((k, n)) = insert_rec(st, &mut children[i].1, key, val, Some(level - 1))? {
                children.insert(i + 1, (k, Child::Dirty(n)));
                if children.len() * INTERNAL_ITEM > CAP {
                    let right = children.split_off(children.len() / 2);
                    let k = right[0].0;
                    st.dirty_nodes += 1;
                    return Ok(Some((k, Arc::new(Node::Internal { level, children: right }))));
                }
            }
            Ok(None)
        }
    }
}

/// Remove `key`, returning its value if it was present.
pub fn remove<D: BlockDevice>(st: &mut Store<D>, root: &mut Child, key: &Key) -> Result<Option<Vec<u8>>> {
    // Look first so that removing a missing key dirties nothing.
    if get(st, root, key)?.is_none() {
        return Ok(None);
    }
    let v = remove_rec(st, root, key, None)?;
    // A root with a single child is replaced by that child, so the tree gets shallower again.
    while let Child::Dirty(n) = root {
        let Node::Internal { children, .. } = Arc::make_mut(n) else { break };
        match children.len() {
            0 => {
                st.dirty_nodes += 1;
                *root = Child::empty();
            }
            1 => {
                let only = children.pop().map(|(_, c)| c).unwrap_or_else(Child::empty);
                *root = only;
            }
            _ => break,
        }
    }
    Ok(v)
}

fn remove_rec<D: BlockDevice>(st: &mut Store<D>, c: &mut Child, key: &Key, lvl: Option<u8>) -> Result<Option<Vec<u8>>> {
    let node = make_dirty(st, c, lvl)?;
    match node {
        Node::Leaf { items, bytes } => match items.binary_search_by(|(k, _)| k.cmp(key)) {
            Ok(i) => {
                let (_, v) = items.remove(i);
                *bytes -= LEAF_OVERHEAD + v.len();
                Ok(Some(v.to_vec()))
            }
            Err(_) => Ok(None),
        },
        Node::Internal { level, children } => {
            let cl = *level - 1;
            let i = route(children, key);
            let v = remove_rec(st, &mut children[i].1, key, Some(cl))?;
            let size = match &children[i].1 {
                Child::Dirty(n) => n.bytes(),
                Child::Disk(_) => CAP,
            };
            if size == 0 {
                children.remove(i);
            } else if size < CAP / 4 && children.len() > 1 {
                let a = if i + 1 < children.len() { i } else { i - 1 };
                try_merge(st, children, a, cl)?;
            }
            Ok(v)
        }
    }
}

/// Merge children `a` and `a + 1` if their contents fit in one node.
fn try_merge<D: BlockDevice>(st: &mut Store<D>, children: &mut Vec<(Key, Child)>, a: usize, lvl: u8) -> Result<()> {
    let sizes = [node_bytes(st, &children[a].1, lvl)?, node_bytes(st, &children[a + 1].1, lvl)?];
    if sizes[0] + sizes[1] > CAP {
        return Ok(());
    }
    let (l, r) = children.split_at_mut(a + 1);
    let left = make_dirty(st, &mut l[a].1, Some(lvl))?;
    let right = make_dirty(st, &mut r[0].1, Some(lvl))?;
    match (left, right) {
        (Node::Leaf { items: li, bytes: lb }, Node::Leaf { items: ri, bytes: rb }) => {
            li.append(ri);
            *lb += *rb;
        }
        (Node::Internal { children: lc, .. }, Node::Internal { children: rc, .. }) => lc.append(rc),
        _ => return Err(Error::Corrupt { block: 0 }),
    }
    children.remove(a + 1);
    Ok(())
}

fn node_bytes<D: BlockDevice>(st: &mut Store<D>, c: &Child, lvl: u8) -> Result<usize> {
    with_node(st, c, Some(lvl), |_, n| Ok(n.bytes()))
}

/// Write every dirty node under `c` (children first) to new blocks; the node writes are appended
/// to `out` as (block, contents) so the caller can issue them sorted and coalesced.
pub fn write_dirty<D: BlockDevice>(
    st: &mut Store<D>,
    c: &mut Child,
    out: &mut Vec<(u64, Vec<u8>)>,
) -> Result<BlockPtr> {
    if let Child::Dirty(node) = c {
        if let Node::Internal { children, .. } = Arc::make_mut(node) {
            for (_, child) in children.iter_mut() {
                write_dirty(st, child, out)?;
            }
        }
        let buf = node.encode(st.txid)?;
        let addr = st.alloc(0)?;
        let addr2 = if st.ditto { st.alloc(1)? } else { 0 };
        let ptr = BlockPtr { addr, addr2, crc: st.csum.of(&buf), birth: st.txid };
        if addr2 != 0 {
            out.push((addr2, buf.clone()));
        }
        out.push((addr, buf));
        if let Child::Dirty(n) = core::mem::replace(c, Child::Disk(ptr)) {
            st.remember(&ptr, n);
        }
    }
    match c {
        Child::Disk(p) => Ok(*p),
        Child::Dirty(_) => Err(Error::Corrupt { block: 0 }),
    }
}

/// Called for each node by [`walk`]; returns false to skip the node's children.
pub type Visitor<'a, D> = dyn FnMut(&mut Store<D>, &BlockPtr, &Node) -> Result<bool> + 'a;

/// Visit every node of the committed tree under `ptr`, parents first. `f` returns false to skip
/// a node's children (already visited through a shared subtree).
pub fn walk<D: BlockDevice>(st: &mut Store<D>, ptr: &BlockPtr, lvl: Option<u8>, f: &mut Visitor<'_, D>) -> Result<()> {
    let n = st.load_node(ptr, lvl)?;
    if !f(st, ptr, &n)? {
        return Ok(());
    }
    if let Node::Internal { level, children } = n.as_ref() {
        for (_, c) in children {
            if let Child::Disk(p) = c {
                walk(st, p, Some(level - 1), f)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "btree_tests.rs"]
mod tests;
