//! `blockdev::BlockDevice` for `VirtioBlk`: synchronous calls built on the submit/poll API.
//!
//! Design: a call (or a vectored batch of runs) is cut into requests of at most
//! `max_request_bytes`, and as many as the queue takes are submitted before the first wait, so a
//! large read or a cache's batch write keeps the device's queue full rather than ping-ponging one
//! request at a time. Requests are redeemed oldest first; when the queue is full the oldest is
//! waited for, which frees a slot. On an error the remaining requests are still drained (their
//! slots must come back) and the first error is returned. Every run is checked before anything is
//! submitted, so a bad argument never leaves a partial write behind.

use crate::blk::{Request, Token, VirtioBlk};
use crate::hal::Hal;
use crate::regs::FEATURE_FLUSH;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use blockdev::{BlockDevice, SECTOR_SIZE};
use protocol::{Error, Result};

/// One request of a batch: which run, and which byte range of it.
#[derive(Clone, Copy)]
struct Job {
    run: usize,
    off: usize,
    len: usize,
}

impl<H: Hal> VirtioBlk<H> {
    fn jobs(&self, runs: impl Iterator<Item = (u64, usize)>) -> Result<Vec<Job>> {
        let chunk = self.max_request_bytes();
        let mut jobs = Vec::new();
        for (run, (sector, len)) in runs.enumerate() {
            blockdev::check_request(self.capacity(), sector, len)?;
            let mut off = 0;
            while off < len {
                let n = chunk.min(len - off);
                jobs.push(Job { run, off, len: n });
                off += n;
            }
        }
        Ok(jobs)
    }

    /// Submit `jobs` with as many in flight as the queue allows, redeeming them in order.
    fn run_jobs(
        &mut self,
        jobs: &[Job],
        mut submit: impl FnMut(&mut Self, Job) -> Result<Token>,
        mut finish: impl FnMut(&mut Self, Job, Token) -> Result<()>,
    ) -> Result<()> {
        let mut pending: VecDeque<(Job, Token)> = VecDeque::new();
        let mut first_err = None;
        let mut next = 0;
        while next < jobs.len() && first_err.is_none() {
            let submitted = submit(self, jobs[next]);
            if submitted.is_err() {
                // Before waiting for anything, let the device see what is already queued.
                if let Err(e) = self.kick() {
                    first_err = Some(e);
                    break;
                }
            }
            match submitted {
                Ok(token) => {
                    pending.push_back((jobs[next], token));
                    next += 1;
                }
                Err(Error::WouldBlock) => match pending.pop_front() {
                    Some((job, token)) => {
                        if let Err(e) = finish(self, job, token) {
                            first_err = Some(e);
                        }
                    }
                    // Every slot belongs to someone else's requests: wait for the device if it
                    // has any of them, else those are completed but untaken and waiting cannot help.
                    None if self.in_flight() > 0 => {
                        if let Err(e) = self.wait() {
                            first_err = Some(e);
                        }
                    }
                    None => first_err = Some(Error::Busy),
                },
                Err(e) => first_err = Some(e),
            }
        }
        if let Err(e) = self.kick() {
            first_err.get_or_insert(e);
        }
        while let Some((job, token)) = pending.pop_front() {
            if let Err(e) = finish(self, job, token) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl<H: Hal> BlockDevice for VirtioBlk<H> {
    fn sector_count(&self) -> u64 {
        self.capacity()
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<()> {
        self.read_vectored(&mut [(sector, buf)])
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<()> {
        self.write_vectored(&[(sector, buf)])
    }

    fn flush(&mut self) -> Result<()> {
        if self.features() & FEATURE_FLUSH == 0 {
            // A legacy device that does not offer FLUSH writes through: nothing to wait for.
            return Ok(());
        }
        let job = Job { run: 0, off: 0, len: 0 };
        self.run_jobs(&[job], |dev, _| dev.submit(Request::Flush), |dev, _, token| dev.wait_for(token, None))
    }

    fn read_vectored(&mut self, runs: &mut [(u64, &mut [u8])]) -> Result<()> {
        let jobs = self.jobs(runs.iter().map(|(s, b)| (*s, b.len())))?;
        let sectors: Vec<u64> = runs.iter().map(|(s, _)| *s).collect();
        self.run_jobs(
            &jobs,
            |dev, job| {
                let sector = sectors[job.run] + (job.off / SECTOR_SIZE) as u64;
                dev.submit_deferred(Request::Read { sector, sectors: (job.len / SECTOR_SIZE) as u32 })
            },
            |dev, job, token| dev.wait_for(token, Some(&mut runs[job.run].1[job.off..job.off + job.len])),
        )
    }

    fn write_vectored(&mut self, runs: &[(u64, &[u8])]) -> Result<()> {
        let jobs = self.jobs(runs.iter().map(|(s, b)| (*s, b.len())))?;
        self.run_jobs(
            &jobs,
            |dev, job| {
                let (sector, buf) = runs[job.run];
                let sector = sector + (job.off / SECTOR_SIZE) as u64;
                dev.submit_deferred(Request::Write { sector, data: &buf[job.off..job.off + job.len] })
            },
            |dev, _, token| dev.wait_for(token, None),
        )
    }
}
