//! [`RemoteBlockDevice`]: a [`BlockDevice`] whose sectors live behind a blockcache server.
//!
//! Design: each request is one call with the caller's buffer lent (Write for reads, Read for writes),
//! split only above [`MAX_BULK`]; vectored requests become one call per [`MAX_RUNS`] runs with the
//! runs' data packed in one lease.
//!
//! Cache-server restarts are made transparent here ("a blockcache restart costs a re-send, not
//! data"): the device keeps a journal of every write since the last successful flush. A restarted
//! cache has lost its dirty blocks, so when the channel reports a restart (the stub already re-sent
//! the idempotent request itself) the journal is replayed into the new cache before anything else,
//! and a read that may have seen the new cache before the replay is repeated. A flush clears the
//! journal only when no restart happened during it. The journal is bounded: past
//! [`JOURNAL_LIMIT`] bytes the device flushes on its own (an extra barrier is always allowed).

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
    /// Cache-server restarts already recovered from.
    seen_restarts: u32,
    /// Writes since the last successful flush, in order: (first sector, data).
    journal: Vec<(u64, Vec<u8>)>,
    journal_bytes: usize,
    /// Journal replays done (for tests and statistics).
    pub replays: u64,
}

/// Flush attempts across cache restarts before giving up with `ServerRestarted`.
const FLUSH_TRIES: usize = 8;

/// Most bytes of un-flushed writes kept for replay before the device flushes by itself.
pub const JOURNAL_LIMIT: usize = 32 << 20;

/// Largest transfer per call, in whole sectors.
const CHUNK: usize = MAX_BULK / SECTOR_SIZE * SECTOR_SIZE;

impl<T: Transport> RemoteBlockDevice<T> {
    pub fn connect(transport: T, server: TaskId) -> Result<Self> {
        let client = Client::new(transport, server);
        let sectors = client.sector_count()?;
        Ok(RemoteBlockDevice { client, sectors, seen_restarts: 0, journal: Vec::new(), journal_bytes: 0, replays: 0 })
    }

    /// If the cache server restarted since we last looked, replay the journal into the new one.
    /// Returns true if a replay happened (so a read just done may be stale).
    fn recover(&mut self) -> Result<bool> {
        let mut replayed = false;
        // A restart during the replay itself shows up as another change: replay again.
        while self.client.channel.restarts() != self.seen_restarts {
            self.seen_restarts = self.client.channel.restarts();
            for (sector, data) in &self.journal {
                for (i, piece) in data.chunks(CHUNK).enumerate() {
                    self.client.write(sector + (i * CHUNK / SECTOR_SIZE) as u64, piece)?;
                }
            }
            self.replays += 1;
            replayed = true;
        }
        Ok(replayed)
    }

    fn journal(&mut self, sector: u64, data: &[u8]) -> Result<()> {
        self.journal.push((sector, data.to_vec()));
        self.journal_bytes += data.len();
        if self.journal_bytes > JOURNAL_LIMIT {
            self.flush()?;
        }
        Ok(())
    }

    fn read_once(&mut self, sector: u64, buf: &mut [u8]) -> Result<()> {
        for (i, piece) in buf.chunks_mut(CHUNK).enumerate() {
            self.client.read(sector + (i * CHUNK / SECTOR_SIZE) as u64, piece)?;
        }
        Ok(())
    }

    fn write_once(&mut self, sector: u64, buf: &[u8]) -> Result<()> {
        for (i, piece) in buf.chunks(CHUNK).enumerate() {
            self.client.write(sector + (i * CHUNK / SECTOR_SIZE) as u64, piece)?;
        }
        Ok(())
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
        self.recover()?;
        self.read_once(sector, buf)?;
        if self.recover()? {
            self.read_once(sector, buf)?;
        }
        Ok(())
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<()> {
        self.check(sector, buf.len())?;
        self.recover()?;
        self.write_once(sector, buf)?;
        self.journal(sector, buf)?;
        self.recover().map(|_| ())
    }

    fn flush(&mut self) -> Result<()> {
        // A cache that keeps restarting under us is reported rather than chased forever.
        for _ in 0..FLUSH_TRIES {
            self.recover()?;
            match self.client.flush() {
                // The flush reached an incarnation that lost our writes: replay, flush again.
                Err(Error::ServerRestarted) => continue,
                Err(e) => return Err(e),
                Ok(()) if self.client.channel.restarts() != self.seen_restarts => continue,
                Ok(()) => {
                    self.journal.clear();
                    self.journal_bytes = 0;
                    return Ok(());
                }
            }
        }
        Err(Error::ServerRestarted)
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
            self.recover()?;
            self.client.read_vectored(wire.clone(), &mut packed)?;
            if self.recover()? {
                self.client.read_vectored(wire, &mut packed)?;
            }
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
            self.recover()?;
            self.client.write_vectored(wire, &packed)?;
            for (sector, buf) in group {
                self.journal(*sector, buf)?;
            }
            self.recover()?;
        }
        Ok(())
    }
}
