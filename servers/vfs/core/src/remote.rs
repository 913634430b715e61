//! [`RemoteFs`]: a [`FileSystem`] whose methods are calls to a filesystem server.
//!
//! Design: a thin adapter over the generated `filesystem::Client`. The operations it forwards unchanged
//! come from `protocol::forward_filesystem_ops!`, the list the server side's `FsServer` shares. The root node and capabilities are
//! fetched once at connect time (they are constant for a filesystem). Reads and writes larger than
//! [`MAX_BULK`] are split; each piece lends the caller's buffer directly, so the bytes are copied by the
//! transport straight between the caller's buffer and the server. [`FileSystem::generation`] is the
//! number of server restarts the channel has seen, which is how the VFS learns that it must re-open its
//! files (the stub already re-sent idempotent requests; `once` requests surface `ServerRestarted`).

use alloc::vec::Vec;

use protocol::api::filesystem::{Client, ScrubSummary, SnapshotInfo, MAX_BATCH, MAX_BULK};
use protocol::api::grants::DirectGrant;
use protocol::fs::{Capabilities, DirEntry, FileSystem, NewNode, NodeId, Stat};
use protocol::ipc::{TaskId, Transport};
use protocol::{Error, Result};

pub struct RemoteFs<T> {
    client: Client<T>,
    root: NodeId,
    caps: Capabilities,
}

impl<T: Transport> RemoteFs<T> {
    /// Connect to the filesystem server `server`.
    pub fn connect(transport: T, server: TaskId) -> Result<Self> {
        let client = Client::new(transport, server);
        let root = client.root()?;
        let caps = client.capabilities()?;
        Ok(RemoteFs { client, root, caps })
    }

    pub fn client(&self) -> &Client<T> {
        &self.client
    }
}

impl<T: Transport> FileSystem for RemoteFs<T> {
    protocol::forward_filesystem_ops!(client);

    fn root(&self) -> NodeId {
        self.root
    }
    fn capabilities(&self) -> Capabilities {
        self.caps
    }
    fn read(&mut self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let end = buf.len().min(done + MAX_BULK);
            let want = end - done;
            let n = self.client.read(node, offset + done as u64, &mut buf[done..end])? as usize;
            if n > want {
                // A server claiming more than it was lent is broken; never trust the count.
                return Err(Error::Malformed);
            }
            done += n;
            if n < want {
                break; // end of file
            }
        }
        Ok(done)
    }
    fn write(&mut self, node: NodeId, offset: u64, data: &[u8]) -> Result<usize> {
        let mut done = 0;
        while done < data.len() {
            let end = data.len().min(done + MAX_BULK);
            let n = self.client.write(node, offset + done as u64, &data[done..end])? as usize;
            if n > end - done {
                return Err(Error::Malformed);
            }
            done += n;
            if n == 0 {
                break;
            }
        }
        Ok(done)
    }
    fn create(&mut self, dir: NodeId, name: &str, node: &NewNode) -> Result<Stat> {
        self.client.create(dir, name, node.clone())
    }
    fn readdir(&mut self, dir: NodeId, cookie: u64, max: usize) -> Result<Vec<DirEntry>> {
        self.client.readdir(dir, cookie, u32::try_from(max).unwrap_or(u32::MAX))
    }
    fn read_batch(&mut self, reads: &[(NodeId, u64, u32)], out: &mut [u8]) -> Result<Vec<u32>> {
        let mut counts = Vec::with_capacity(reads.len());
        let mut at = 0usize;
        for group in reads.chunks(MAX_BATCH) {
            let len =
                group.iter().try_fold(0usize, |a, r| a.checked_add(r.2 as usize)).ok_or(Error::InvalidArgument)?;
            if len > MAX_BULK {
                // Too much data for one lease: the trait's one-read-at-a-time path splits it.
                for &(node, offset, l) in group {
                    let buf = out.get_mut(at..at + l as usize).ok_or(Error::InvalidArgument)?;
                    counts.push(self.read(node, offset, buf)? as u32);
                    at += l as usize;
                }
                continue;
            }
            let buf = out.get_mut(at..at + len).ok_or(Error::InvalidArgument)?;
            counts.extend(self.client.read_batch(group.to_vec(), buf)?);
            at += len;
        }
        Ok(counts)
    }
    fn generation(&self) -> u64 {
        u64::from(self.client.channel.restarts())
    }
    fn snapshot_list(&mut self) -> Result<Vec<SnapshotInfo>> {
        // The server answers in pages that fit one reply; an empty page is the end.
        let mut all: Vec<SnapshotInfo> = Vec::new();
        loop {
            let start = u32::try_from(all.len()).map_err(|_| Error::TooBig)?;
            let page = self.client.snapshot_list(start)?;
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    }
    fn run_scrub(&mut self) -> Result<ScrubSummary> {
        self.client.scrub()
    }
    fn grant_direct(&mut self, client: TaskId, node: NodeId) -> Result<DirectGrant> {
        let handle = self.client.grant(client, node)?;
        // The id the call went to, so a grant is never paired with a server that did not make it.
        Ok(DirectGrant { server: self.client.channel.server(), handle })
    }
    fn revoke_direct(&mut self, handle: u64) -> Result<()> {
        self.client.revoke(handle)
    }
}
