//! [`RemoteBlockDevice`]: a [`BlockDevice`] whose sectors live behind a blockcache server.
//!
//! Design: each request is one call with the caller's buffer lent (Write for reads, Read for writes),
//! split only above [`MAX_BULK`]; vectored requests become one call per [`MAX_RUNS`] runs with the
//! runs' data packed in one lease. Reads and writes are re-sent after a cache-server restart (block
//! writes are idempotent), but a restart may have dropped dirty blocks written before it, so the next
//! `flush` reports [`Error::ServerRestarted`]: the filesystem must treat its un-flushed writes as lost
//! and re-send them (WFS keeps them until its commit's flush succeeds).

use alloc::vec;
use alloc::vec::Vec;

use blockdev::{BlockDevice, SECTOR_SIZE};
use protocol::api::blockcache::{Client, Run, MAX_RUNS};
use protocol::api::filesystem::MAX_BULK;
use protocol::ipc::{TaskId, Transport};
use protocol::{Error, Result};

pub struct RemoteBlockDevice<T> {
    client: Client<T>,
    sectors: u64,
    /// Restarts of the cache server already reported by a flush.
    reported_restarts: u32,
}

/// Largest transfer per call, in whole sectors.
const CHUNK: usize = MAX_BULK / SECTOR_SIZE * SECTOR_SIZE;

impl<T: Transport> RemoteBlockDevice<T> {
    pub fn connect(transport: T, server: TaskId) -> Result<Self> {
        let client = Client::new(transport, server);
        let sectors = client.sector_count()?;
        Ok(RemoteBlockDevice { client, sectors, reported_restarts: 0 })
    }

    pub fn client(&self) -> &Client<T> {
        &self.client
    }

    fn check(&self, sector: u64, len: usize) -> Result<()> {
        blockdev::check_request(self.sectors, sector, len).map(|_| ())
    }
}

/// Pack `runs` into wire runs, checking each is whole sectors.
fn wire_runs(lens: impl Iterator<Item = (u64, usize)>) -> Result<Vec<Run>> {
    lens.map(|(sector, len)| {
        if len % SECTOR_SIZE != 0 {
            return Err(Error::InvalidArgument);
        }
        Ok(Run { sector, sectors: u32::try_from(len / SECTOR_SIZE).map_err(|_| Error::TooBig)? })
    })
    .collect()
}

impl<T: Transport> BlockDevice for RemoteBlockDevice<T> {
    fn sector_count(&self) -> u64 {
        self.sectors
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<()> {
        self.check(sector, buf.len())?;
        for (i, piece) in buf.chunks_mut(CHUNK).enumerate() {
            self.client.read(sector + (i * CHUNK / SECTOR_SIZE) as u64, piece)?;
        }
        Ok(())
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<()> {
        self.check(sector, buf.len())?;
        for (i, piece) in buf.chunks(CHUNK).enumerate() {
            self.client.write(sector + (i * CHUNK / SECTOR_SIZE) as u64, piece)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let result = self.client.flush();
        let restarts = self.client.channel.restarts();
        if restarts != self.reported_restarts {
            self.reported_restarts = restarts;
            return Err(Error::ServerRestarted);
        }
        result
    }

    fn read_vectored(&mut self, runs: &mut [(u64, &mut [u8])]) -> Result<()> {
        for group in runs.chunks_mut(MAX_RUNS) {
            let total: usize = group.iter().map(|(_, b)| b.len()).sum();
            if total > CHUNK {
                // Too big for one lease: plain reads, which split.
                for (sector, buf) in group.iter_mut() {
                    self.read(*sector, buf)?;
                }
                continue;
            }
            for (sector, buf) in group.iter() {
                self.check(*sector, buf.len())?;
            }
            let wire = wire_runs(group.iter().map(|(s, b)| (*s, b.len())))?;
            let mut packed = vec![0u8; total];
            self.client.read_vectored(wire, &mut packed)?;
            let mut at = 0;
            for (_, buf) in group.iter_mut() {
                buf.copy_from_slice(&packed[at..at + buf.len()]);
                at += buf.len();
            }
        }
        Ok(())
    }

    fn write_vectored(&mut self, runs: &[(u64, &[u8])]) -> Result<()> {
        for group in runs.chunks(MAX_RUNS) {
            let total: usize = group.iter().map(|(_, b)| b.len()).sum();
            if total > CHUNK {
                for (sector, buf) in group {
                    self.write(*sector, buf)?;
                }
                continue;
            }
            for (sector, buf) in group {
                self.check(*sector, buf.len())?;
            }
            let wire = wire_runs(group.iter().map(|(s, b)| (*s, b.len())))?;
            let packed: Vec<u8> = group.iter().flat_map(|(_, b)| b.iter().copied()).collect();
            self.client.write_vectored(wire, &packed)?;
        }
        Ok(())
    }
}
