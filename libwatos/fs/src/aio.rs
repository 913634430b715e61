//! Asynchronous I/O: submit many reads and writes, each gets a [`Ticket`] at once; completions come
//! back later, in any number per call.
//!
//! Design: the vfs server's asynchronous interface (`aio_submit`, `aio_reap`, `aio_close`), on a
//! queue of its own at the server (numbered per `Fs` connection, so queues never see each other's
//! results; a dropped queue closes it when requests are still there): a submit is queued at
//! the server and answered at once; the server runs queued requests when no call is waiting (reads
//! as batch reads, so the filesystem, the cache and the disk see many at a time) and posts this
//! queue's notification bits; `aio_reap` collects finished requests with their data. Submissions
//! are gathered here and sent [`MAX_AIO_SUBMIT`] at a time (or on `flush`, `poll`, `wait`,
//! `complete`), so a submit costs no call of its own. Waiting uses the hook given to
//! [`Queue::with_notification`] (libwatos: sleep until the bit arrives); without one, `wait` simply
//! reaps, and the server runs a process's queue when it reaps with nothing finished, so the host
//! harness (whose transport has no idle time) makes progress too. The server runs one process's
//! requests in submission order, so a read submitted after a write sees it. Reads and writes are
//! positioned and leave the file's own position alone.
//!
//! Restarts: the requests a restarted vfs held are lost with it. Reads are idempotent: they are
//! submitted again (files re-open by path). A write already sent may or may not have happened, so
//! its ticket fails with [`ErrorKind::ServerRestarted`]; writes not yet sent go to the new server.
//! A server whose answers do not match what was sent (unknown tickets, counts beyond a request, an
//! empty reap while requests are outstanding) fails every outstanding ticket with `InvalidData`, so
//! no ticket is ever left hanging.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;

use protocol::api::vfs::{AioDone, AioReq, MAX_AIO_LEN, MAX_AIO_SUBMIT};
use protocol::ipc::Transport;

use crate::error::{Error, ErrorKind, Result};
use crate::file::{File, Inner};
use crate::handle::Fs;
use crate::MAX_REOPENS;

/// Names one submitted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub u64);

/// What a finished request produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// The bytes read (shorter than asked at the end of the file, or beyond [`MAX_AIO_LEN`]).
    Read(Vec<u8>),
    /// How many bytes were written.
    Written(usize),
}

/// One finished request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub ticket: Ticket,
    pub result: Result<Done>,
}

/// How many requests this queue had outstanding (submitted, not yet reaped), sampled at each submit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub submitted: u64,
    pub outstanding_max: u64,
    pub outstanding_sum: u64,
}

impl QueueStats {
    /// Mean outstanding requests at submit time.
    pub fn outstanding_mean(&self) -> f64 {
        if self.submitted == 0 {
            0.0
        } else {
            self.outstanding_sum as f64 / self.submitted as f64
        }
    }
}

enum Op<T: Transport> {
    Read { file: Rc<Inner<T>>, offset: u64, len: usize },
    Write { file: PendingWrite<T>, offset: u64, data: Vec<u8> },
}

/// A file with an asynchronous write outstanding, counted in the file while this lives (the
/// request's whole life here, sent or not): its reads go through the vfs meanwhile, the server that
/// holds the queued write, so whether a read sees it is decided where it always was (see `direct`).
struct PendingWrite<T: Transport>(Rc<Inner<T>>);

impl<T: Transport> PendingWrite<T> {
    fn new(file: Rc<Inner<T>>) -> Self {
        file.pending_writes.set(file.pending_writes.get() + 1);
        PendingWrite(file)
    }
}

impl<T: Transport> Drop for PendingWrite<T> {
    fn drop(&mut self) {
        self.0.pending_writes.set(self.0.pending_writes.get().saturating_sub(1));
    }
}

/// Bytes of the buffer each reap lends for read data (a read is at most [`MAX_AIO_LEN`]).
const REAP_BUF: usize = 256 * 1024;
/// Most completions asked for per reap.
const REAP_MAX: u32 = 128;
/// Most write bytes one submit carries.
const SUBMIT_DATA: usize = 512 * 1024;

/// A submission queue; files stay open while their requests are pending.
pub struct Queue<T: Transport> {
    fs: Fs<T>,
    /// This queue's number at the vfs server.
    id: u32,
    next: u64,
    calls: u64,
    unsent: VecDeque<(Ticket, Op<T>)>,
    /// At the server, by the server's ticket.
    sent: BTreeMap<u64, (Ticket, Op<T>)>,
    /// The vfs epoch `sent` belongs to.
    sent_epoch: u32,
    ready: Vec<Completion>,
    bits: u64,
    waiter: Option<Box<dyn Fn(u64)>>,
    reap_buf: Vec<u8>,
    stats: QueueStats,
}

impl<T: Transport> Fs<T> {
    /// A new, empty submission queue without a notification (`wait` polls the server).
    pub fn queue(&self) -> Queue<T> {
        Queue {
            fs: self.clone(),
            id: self.next_queue(),
            next: 0,
            calls: 0,
            unsent: VecDeque::new(),
            sent: BTreeMap::new(),
            sent_epoch: self.epoch(),
            ready: Vec::new(),
            bits: 0,
            waiter: None,
            reap_buf: Vec::new(),
            stats: QueueStats::default(),
        }
    }
}

impl<T: Transport> Queue<T> {
    /// Have the server post `bits` when requests finished, and wait for them with `waiter(bits)`.
    pub fn with_notification(mut self, bits: u64, waiter: impl Fn(u64) + 'static) -> Self {
        self.bits = bits;
        self.waiter = Some(Box::new(waiter));
        self
    }

    fn push(&mut self, op: Op<T>) -> Ticket {
        self.next += 1;
        let t = Ticket(self.next);
        self.unsent.push_back((t, op));
        let out = (self.unsent.len() + self.sent.len()) as u64;
        self.stats.submitted += 1;
        self.stats.outstanding_max = self.stats.outstanding_max.max(out);
        self.stats.outstanding_sum += out;
        if self.unsent.len() >= MAX_AIO_SUBMIT {
            self.flush();
        }
        t
    }

    /// Read `len` bytes of `file` at `offset` (capped at [`MAX_AIO_LEN`]).
    pub fn submit_read(&mut self, file: &File<T>, offset: u64, len: usize) -> Ticket {
        self.push(Op::Read { file: file.inner.clone(), offset, len: len.min(MAX_AIO_LEN) })
    }

    /// Write `data` into `file` at `offset` (at the end for an append-mode file); more than
    /// [`MAX_AIO_LEN`] bytes fail with `InvalidInput`.
    pub fn submit_write(&mut self, file: &File<T>, offset: u64, data: Vec<u8>) -> Ticket {
        self.push(Op::Write { file: PendingWrite::new(file.inner.clone()), offset, data })
    }

    /// Requests submitted and not yet returned by `poll`, `wait` or `complete`.
    pub fn in_flight(&self) -> usize {
        self.unsent.len() + self.sent.len() + self.ready.len()
    }

    /// Requests at the vfs server now.
    pub fn at_server(&self) -> usize {
        self.sent.len()
    }

    /// How many vfs calls this queue has made so far.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    fn fail(&mut self, ticket: Ticket, e: Error) {
        self.ready.push(Completion { ticket, result: Err(e) });
    }

    /// The vfs restarted: its requests are gone. Reads go back to be sent again; writes fail.
    fn lost_server(&mut self) {
        let sent = core::mem::take(&mut self.sent);
        for (_, (ticket, op)) in sent.into_iter().rev() {
            match op {
                Op::Read { .. } => self.unsent.push_front((ticket, op)),
                Op::Write { .. } => self.fail(ticket, Error::from(protocol::Error::ServerRestarted)),
            }
        }
        self.sent_epoch = self.fs.epoch();
    }

    /// Every outstanding request fails with `e` (the server cannot be trusted with them).
    fn fail_sent(&mut self, e: Error) {
        for (_, (ticket, _)) in core::mem::take(&mut self.sent) {
            self.fail(ticket, e);
        }
    }

    /// Send every gathered request to the server.
    pub fn flush(&mut self) {
        let mut tries = 0;
        while !self.unsent.is_empty() {
            if self.fs.epoch() != self.sent_epoch {
                self.lost_server();
            }
            // Take a chunk; requests that are bad before sending complete at once.
            let mut chunk: Vec<(Ticket, Op<T>)> = Vec::new();
            let (mut reqs, mut data) = (Vec::new(), Vec::new());
            while chunk.len() < MAX_AIO_SUBMIT {
                let Some((ticket, op)) = self.unsent.pop_front() else { break };
                let (file, offset, len, write) = match &op {
                    Op::Read { file, offset, len } => (file, *offset, *len, None),
                    Op::Write { file, offset, data } => (&file.0, *offset, data.len(), Some(data)),
                };
                if write.is_some_and(|d| d.len() > MAX_AIO_LEN) {
                    self.fail(ticket, Error::new(ErrorKind::InvalidInput));
                    continue;
                }
                if write.is_some_and(|d| data.len() + d.len() > SUBMIT_DATA) {
                    self.unsent.push_front((ticket, op));
                    break;
                }
                let fd = match file.fd() {
                    Ok(fd) => fd,
                    // Re-opening met yet another restart: try the chunk again.
                    Err(e) if e.kind() == ErrorKind::ServerRestarted && tries < MAX_REOPENS => {
                        tries += 1;
                        self.unsent.push_front((ticket, op));
                        break;
                    }
                    Err(e) => {
                        self.fail(ticket, e);
                        continue;
                    }
                };
                if write.is_some() {
                    file.mark_unsynced();
                }
                data.extend_from_slice(write.map_or(&[][..], |d| &d[..]));
                reqs.push(AioReq { fd, offset, len: len as u32, write: write.is_some() });
                chunk.push((ticket, op));
            }
            if chunk.is_empty() {
                continue;
            }
            // A zero-length lease would carry a dangling pointer; lend one byte instead.
            if data.is_empty() {
                data.push(0);
            }
            let epoch = self.fs.epoch();
            self.calls += 1;
            let r = self.fs.client().aio_submit(self.id, self.bits, reqs, &data);
            let restarted = self.fs.epoch() != epoch || matches!(r, Err(protocol::Error::ServerRestarted));
            match r {
                Ok(first) if !restarted => {
                    for (i, item) in chunk.into_iter().enumerate() {
                        self.sent.insert(first + i as u64, item);
                    }
                }
                _ if restarted && tries < MAX_REOPENS => {
                    // A submit is only queued, never run, before its reply: resend the chunk.
                    tries += 1;
                    for item in chunk.into_iter().rev() {
                        self.unsent.push_front(item);
                    }
                    self.lost_server();
                }
                r => {
                    let e = Error::from(r.err().unwrap_or(protocol::Error::ServerRestarted));
                    for (ticket, _) in chunk {
                        self.fail(ticket, e);
                    }
                }
            }
        }
    }

    /// One reap call: move what the server finished into `ready`. False when the server had
    /// nothing finished for us (only possible with a notification: otherwise it runs our queue).
    fn reap(&mut self) -> bool {
        if self.fs.epoch() != self.sent_epoch {
            self.lost_server();
            self.flush();
        }
        if self.sent.is_empty() {
            return true;
        }
        if self.reap_buf.len() < REAP_BUF {
            self.reap_buf = vec![0; REAP_BUF];
        }
        let epoch = self.fs.epoch();
        self.calls += 1;
        let r = self.fs.client().aio_reap(self.id, REAP_MAX, &mut self.reap_buf);
        if self.fs.epoch() != epoch || matches!(r, Err(protocol::Error::ServerRestarted)) {
            self.lost_server();
            self.flush();
            return true;
        }
        match r {
            Ok(done) if done.is_empty() && self.bits != 0 => return false,
            Ok(done) if done.is_empty() => self.fail_sent(protocol::Error::Malformed.into()),
            Ok(done) => {
                if let Err(e) = self.take(done) {
                    self.fail_sent(e);
                }
            }
            Err(e) => self.fail_sent(e.into()),
        }
        true
    }

    /// Match a reap's completions with what was sent: a completion that does not fit its request
    /// fails that ticket; an unknown ticket is an error (the caller then fails every other one).
    fn take(&mut self, done: Vec<AioDone>) -> Result<()> {
        let malformed = || Error::from(protocol::Error::Malformed);
        let mut at = 0usize;
        for d in done {
            let (ticket, op) = self.sent.remove(&d.ticket).ok_or_else(malformed)?;
            let result = match (op, d.result) {
                (Op::Read { len, .. }, Ok(n)) => {
                    let n = n as usize;
                    let bytes = self.reap_buf.get(at..at.saturating_add(n)).filter(|_| n <= len);
                    at = at.saturating_add(n);
                    bytes.map(|b| Done::Read(b.to_vec())).ok_or_else(malformed)
                }
                (Op::Write { data, .. }, Ok(n)) if n as usize > data.len() => Err(malformed()),
                (Op::Write { data, .. }, Ok(0)) if !data.is_empty() => Err(Error::new(ErrorKind::WriteZero)),
                (Op::Write { .. }, Ok(n)) => Ok(Done::Written(n as usize)),
                (_, Err(e)) => Err(e.into()),
            };
            self.ready.push(Completion { ticket, result });
        }
        Ok(())
    }

    /// Send what was gathered and return whatever has finished, without waiting.
    pub fn poll(&mut self) -> Vec<Completion> {
        self.flush();
        if self.ready.is_empty() {
            self.reap();
        }
        core::mem::take(&mut self.ready)
    }

    /// Send what was gathered and wait until at least one request finished (none if nothing is
    /// outstanding); returns what finished.
    pub fn wait(&mut self) -> Vec<Completion> {
        self.flush();
        while self.ready.is_empty() && !(self.sent.is_empty() && self.unsent.is_empty()) {
            // Reap first: what finished before the last notification was taken is still there.
            // Nothing there means the server has not run our requests yet, and will notify.
            if !self.reap() {
                if let Some(w) = &self.waiter {
                    w(self.bits);
                }
            }
            self.flush();
        }
        core::mem::take(&mut self.ready)
    }

    /// Run every pending request to the end; one completion per ticket, in submission order.
    pub fn complete(&mut self) -> Vec<Completion> {
        let mut out = Vec::new();
        loop {
            out.extend(self.wait());
            if self.unsent.is_empty() && self.sent.is_empty() && self.ready.is_empty() {
                break;
            }
        }
        out.sort_by_key(|c| c.ticket);
        out
    }
}

impl<T: Transport> Drop for Queue<T> {
    /// Requests still at the server would hold its per-process budget until the process exits:
    /// tell it to drop them (nothing useful can be done with an error here).
    fn drop(&mut self) {
        if !self.sent.is_empty() && self.fs.epoch() == self.sent_epoch {
            let _ = self.fs.client().aio_close(self.id);
        }
    }
}
