//! [`AioState`]: the vfs server's asynchronous requests (vfs ops 28..=31).
//!
//! Design: requests live in queues, each named by the process and a number it picks (so several
//! independent queues in one process never see each other's results). `aio_submit` only queues:
//! each request gets a ticket (per queue, consecutive), write
//! data is copied out of the caller's lease at once (the lease dies with the reply), and the reply
//! goes back immediately, so a process can have many requests at the server while it keeps running.
//! The queue is run by [`AioState::run`], which the serve loop calls when no call is waiting (see
//! `libwatos::transport::serve_idle`): every queued request of every process, in submission order
//! per process, consecutive reads gathered into `batch_read`s (one `read_batch` per mount, so the
//! filesystem and the cache below see the whole batch at once), writes as positioned writes. Each
//! process whose requests finished then gets its notification bits; it collects the results with
//! `aio_reap`. A process that asked for no notification and reaps while requests are queued and
//! none are finished has its queue run first: the host harness, whose transport has no idle time,
//! progresses that way. Bounded per process ([`MAX_AIO`] requests, [`MAX_HELD_BYTES`] of data):
//! `Busy` beyond. A queue is dropped by `aio_close` and all of a process's when it exits; a vfs
//! restart loses them all, and the client library fails the tickets it had here.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;

use protocol::api::filesystem::MAX_BULK;
use protocol::api::vfs::{AioDone, AioReq, AioStats, ReadReq, Whence, MAX_AIO, MAX_AIO_LEN, MAX_AIO_SUBMIT, MAX_BATCH};
use protocol::ipc::LeaseAccess;
use protocol::{Error, Result};

use crate::{Pid, Vfs};

/// Most bytes of requests (write data queued, read data finished) one process may hold here.
pub const MAX_HELD_BYTES: usize = 8 << 20;
/// Most completions one `aio_reap` returns (their encoding must fit the IDL's reply area).
pub const MAX_REAP: usize = 128;

struct Queued {
    ticket: u64,
    req: AioReq,
    data: Vec<u8>,
}

struct Finished {
    ticket: u64,
    result: Result<u32>,
    data: Vec<u8>,
}

#[derive(Default)]
struct Client {
    bits: u64,
    next: u64,
    queued: VecDeque<Queued>,
    done: VecDeque<Finished>,
    /// Bytes the requests hold: each request's `len` counts from submit until it is reaped.
    bytes: usize,
}

/// A process's queue: its task id and the queue number it chose.
pub type QueueId = (Pid, u32);

/// Every process's asynchronous requests and the counters.
#[derive(Default)]
pub struct AioState {
    clients: BTreeMap<QueueId, Client>,
    stats: AioStats,
}

impl AioState {
    /// The requests and bytes `pid` holds over all its queues.
    fn held_by(&self, pid: Pid) -> (usize, usize) {
        let mine = self.clients.range((pid, 0)..=(pid, u32::MAX)).map(|(_, c)| c);
        mine.fold((0, 0), |(n, b), c| (n + c.queued.len() + c.done.len(), b + c.bytes))
    }

    /// Queue `reqs` on queue `id`, write data from lease 0 of `leases` (packed in request order).
    pub fn submit(&mut self, id: QueueId, bits: u64, reqs: &[AioReq], leases: &dyn LeaseAccess) -> Result<u64> {
        if reqs.len() > MAX_AIO_SUBMIT {
            return Err(Error::TooBig);
        }
        if reqs.iter().any(|r| r.len as usize > MAX_AIO_LEN) {
            return Err(Error::InvalidArgument);
        }
        let data_len: usize = reqs.iter().filter(|r| r.write).map(|r| r.len as usize).sum();
        if data_len > leases.len(0)? {
            return Err(Error::InvalidArgument);
        }
        let bytes: usize = reqs.iter().map(|r| r.len as usize).sum();
        let (held_n, held_bytes) = self.held_by(id.0);
        if held_n + reqs.len() > MAX_AIO || held_bytes + bytes > MAX_HELD_BYTES {
            return Err(Error::Busy);
        }
        let mut items = Vec::with_capacity(reqs.len());
        let mut at = 0;
        for r in reqs {
            let mut data = Vec::new();
            if r.write {
                data = vec![0; r.len as usize];
                leases.read(0, at, &mut data)?;
                at += data.len();
            }
            items.push(data);
        }
        let c = self.clients.entry(id).or_default();
        c.bits = bits;
        c.bytes += bytes;
        let first = c.next;
        for (r, data) in reqs.iter().zip(items) {
            c.queued.push_back(Queued { ticket: c.next, req: *r, data });
            c.next += 1;
        }
        let held: usize = self.clients.values().map(|c| c.queued.len() + c.done.len()).sum();
        let s = &mut self.stats;
        s.submitted += reqs.len() as u64;
        s.held_max = s.held_max.max(held as u64);
        s.held_sum += held as u64;
        s.held_samples += 1;
        Ok(first)
    }

    /// Whether any request waits to be run.
    pub fn has_work(&self) -> bool {
        self.clients.values().any(|c| !c.queued.is_empty())
    }

    /// Run every queued request; returns the processes to notify, with their bits (queues of one
    /// process sharing a bit are notified once).
    pub fn run(&mut self, vfs: &mut Vfs) -> Vec<(Pid, u64)> {
        let ids: Vec<QueueId> = self.clients.iter().filter(|(_, c)| !c.queued.is_empty()).map(|(id, _)| *id).collect();
        let mut wake: Vec<(Pid, u64)> = Vec::new();
        for id in ids {
            if self.run_client(vfs, id) {
                if let Some(c) = self.clients.get(&id).filter(|c| c.bits != 0) {
                    match wake.iter_mut().find(|w| w.0 == id.0) {
                        Some(w) => w.1 |= c.bits,
                        None => wake.push((id.0, c.bits)),
                    }
                }
            }
        }
        wake
    }

    /// Run queue `id`; true if anything finished.
    fn run_client(&mut self, vfs: &mut Vfs, id: QueueId) -> bool {
        let pid = id.0;
        let Some(c) = self.clients.get_mut(&id) else { return false };
        let queued: Vec<Queued> = c.queued.drain(..).collect();
        if queued.is_empty() {
            return false;
        }
        let s = &mut self.stats;
        s.runs += 1;
        s.run_max = s.run_max.max(queued.len() as u64);
        s.run_sum += queued.len() as u64;
        s.completed += queued.len() as u64;
        let mut reads: Vec<Queued> = Vec::new();
        let mut bytes = 0;
        for q in queued {
            if !q.req.write {
                if reads.len() == MAX_BATCH || bytes + q.req.len as usize > MAX_BULK {
                    read_batch(vfs, pid, &mut reads, &mut c.done);
                    bytes = 0;
                }
                bytes += q.req.len as usize;
                reads.push(q);
                continue;
            }
            read_batch(vfs, pid, &mut reads, &mut c.done);
            bytes = 0;
            let result = pwrite(vfs, pid, q.req.fd, q.req.offset, &q.data);
            c.done.push_back(Finished { ticket: q.ticket, result, data: Vec::new() });
        }
        read_batch(vfs, pid, &mut reads, &mut c.done);
        true
    }

    /// Up to `max` finished requests of queue `id` whose read data fits lease 0 (written there).
    pub fn reap(&mut self, vfs: &mut Vfs, id: QueueId, max: u32, leases: &mut dyn LeaseAccess) -> Result<Vec<AioDone>> {
        let room = leases.len(0)?;
        // A queue without a notification could wait forever for the idle run: run it now.
        if self.clients.get(&id).is_some_and(|c| c.done.is_empty() && c.bits == 0) {
            self.run_client(vfs, id);
        }
        let Some(c) = self.clients.get_mut(&id) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        let mut at = 0;
        while out.len() < (max as usize).min(MAX_REAP) {
            let Some(f) = c.done.front() else { break };
            if at + f.data.len() > room {
                // Never stuck: a caller whose lease cannot hold the next read learns it.
                if out.is_empty() {
                    return Err(Error::InvalidArgument);
                }
                break;
            }
            leases.write(0, at, &f.data)?;
            at += f.data.len();
            let Some(f) = c.done.pop_front() else { break };
            out.push(AioDone { ticket: f.ticket, result: f.result });
        }
        // Lengths count as held until reaped; queued and finished requests share one budget.
        c.bytes = c.queued.iter().map(|q| q.req.len as usize).chain(c.done.iter().map(|f| f.data.len())).sum();
        Ok(out)
    }

    /// Drop queue `id` and its requests.
    pub fn close(&mut self, id: QueueId) -> Result<()> {
        self.clients.remove(&id).map(|_| ()).ok_or(Error::NotFound)
    }

    /// Process `pid` is gone: drop all its queues.
    pub fn forget(&mut self, pid: Pid) {
        self.clients.retain(|id, _| id.0 != pid);
    }

    pub fn stats(&self) -> AioStats {
        self.stats
    }
}

/// Run the gathered reads as one vfs batch read (one `read_batch` per mount); when the batch fails,
/// each read is redone alone so that each ticket gets its own result.
fn read_batch(vfs: &mut Vfs, pid: Pid, reads: &mut Vec<Queued>, done: &mut VecDeque<Finished>) {
    if reads.is_empty() {
        return;
    }
    let reqs: Vec<ReadReq> =
        reads.iter().map(|q| ReadReq { fd: q.req.fd, offset: q.req.offset, len: q.req.len }).collect();
    let total: usize = reqs.iter().map(|r| r.len as usize).sum();
    let mut buf = vec![0u8; total];
    match vfs.batch_read(pid, &reqs, &mut buf) {
        Ok(counts) => {
            let mut at = 0;
            for (q, n) in reads.iter().zip(counts) {
                let n = (n as usize).min(q.req.len as usize);
                done.push_back(Finished { ticket: q.ticket, result: Ok(n as u32), data: buf[at..at + n].to_vec() });
                at += q.req.len as usize;
            }
        }
        Err(e) if reads.len() == 1 => {
            done.push_back(Finished { ticket: reads[0].ticket, result: Err(e), data: Vec::new() })
        }
        Err(_) => {
            for (q, r) in reads.iter().zip(&reqs) {
                let mut b = vec![0u8; r.len as usize];
                let result = vfs.batch_read(pid, core::slice::from_ref(r), &mut b).map(|c| c[0].min(r.len));
                if let Ok(n) = result {
                    b.truncate(n as usize);
                } else {
                    b.clear();
                }
                done.push_back(Finished { ticket: q.ticket, result, data: b });
            }
        }
    }
    reads.clear();
}

/// Write `data` at `offset` (at the end for an append-mode descriptor), leaving the descriptor's
/// offset where it was.
fn pwrite(vfs: &mut Vfs, pid: Pid, fd: u32, offset: u64, data: &[u8]) -> Result<u32> {
    let at = i64::try_from(offset).map_err(|_| Error::InvalidArgument)?;
    let saved = vfs.seek(pid, fd, Whence::Current, 0)?;
    let r = vfs.seek(pid, fd, Whence::Start, at).and_then(|_| vfs.write(pid, fd, data));
    // The restore cannot fail where the first seek succeeded (offsets are non-negative).
    let restored = vfs.seek(pid, fd, Whence::Start, saved as i64);
    let n = r?;
    restored?;
    Ok(n as u32)
}
