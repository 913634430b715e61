//! Asynchronous I/O: submit many reads and writes, each gets a [`Ticket`]; `complete` returns what
//! finished.
//!
//! Design: the interface is the one a notification-driven implementation needs (owned buffers,
//! tickets, completions in any order), while the transport underneath is still synchronous IPC. So
//! `complete` runs everything submitted, in submission order, with as few calls as possible: each
//! run of consecutive reads becomes vfs `batch_read` requests (up to `MAX_BATCH` reads and
//! [`crate::MAX_IO`] bytes each, one lease for all the data); writes, which the vfs has no batch
//! form for, are one positioned write each. Keeping submission order means a read submitted after a
//! write sees that write. A batch that fails is redone read by read, so each ticket gets its own
//! result. Batch reads are idempotent: after a vfs restart the files re-open and the batch is resent.
//! Reads and writes are positioned and leave the file's own position alone.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;

use protocol::api::vfs::{ReadReq, Whence, MAX_BATCH};
use protocol::ipc::Transport;

use crate::error::{Error, ErrorKind, Result};
use crate::file::{File, Inner, Need};
use crate::fs::Fs;
use crate::{MAX_IO, MAX_REOPENS};

/// Names one submitted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub u64);

/// What a finished request produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// The bytes read (shorter than asked at the end of the file, or beyond [`crate::MAX_IO`]).
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

enum Op<T: Transport> {
    Read { file: Rc<Inner<T>>, offset: u64, len: usize },
    Write { file: Rc<Inner<T>>, offset: u64, data: Vec<u8> },
}

/// A submission queue; files stay open while their requests are pending.
pub struct Queue<T: Transport> {
    fs: Fs<T>,
    pending: Vec<(Ticket, Op<T>)>,
    next: u64,
    calls: u64,
}

impl<T: Transport> Fs<T> {
    /// A new, empty submission queue.
    pub fn queue(&self) -> Queue<T> {
        Queue { fs: self.clone(), pending: Vec::new(), next: 0, calls: 0 }
    }
}

impl<T: Transport> Queue<T> {
    fn ticket(&mut self) -> Ticket {
        self.next += 1;
        Ticket(self.next)
    }

    /// Read `len` bytes of `file` at `offset` (capped at [`crate::MAX_IO`]).
    pub fn submit_read(&mut self, file: &File<T>, offset: u64, len: usize) -> Ticket {
        let t = self.ticket();
        self.pending.push((t, Op::Read { file: file.inner.clone(), offset, len: len.min(MAX_IO) }));
        t
    }

    /// Write `data` into `file` at `offset` (at the end for an append-mode file).
    pub fn submit_write(&mut self, file: &File<T>, offset: u64, data: Vec<u8>) -> Ticket {
        let t = self.ticket();
        self.pending.push((t, Op::Write { file: file.inner.clone(), offset, data }));
        t
    }

    /// Requests submitted and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// How many vfs calls `complete` has made so far (batching makes this far less than requests).
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// Run every pending request; returns one completion per ticket, in submission order.
    pub fn complete(&mut self) -> Vec<Completion> {
        let pending = core::mem::take(&mut self.pending);
        let mut out = Vec::with_capacity(pending.len());
        let mut reads: Vec<(Ticket, Rc<Inner<T>>, u64, usize)> = Vec::new();
        // Bytes of the reads gathered in `reads`.
        let mut bytes = 0;
        for (ticket, op) in pending {
            match op {
                Op::Read { file, offset, len } => {
                    if reads.len() == MAX_BATCH || bytes + len > MAX_IO {
                        self.flush_reads(&mut reads, &mut out);
                        bytes = 0;
                    }
                    bytes += len;
                    reads.push((ticket, file, offset, len));
                }
                Op::Write { file, offset, data } => {
                    self.flush_reads(&mut reads, &mut out);
                    bytes = 0;
                    let result = self.write_at(&file, offset, &data).map(Done::Written);
                    out.push(Completion { ticket, result });
                }
            }
        }
        self.flush_reads(&mut reads, &mut out);
        out
    }

    fn flush_reads(&mut self, reads: &mut Vec<(Ticket, Rc<Inner<T>>, u64, usize)>, out: &mut Vec<Completion>) {
        if reads.is_empty() {
            return;
        }
        let batch: Vec<(&Rc<Inner<T>>, u64, usize)> = reads.iter().map(|r| (&r.1, r.2, r.3)).collect();
        match self.batch(&batch) {
            Ok(datas) => out.extend(reads.iter().zip(datas).map(|(r, d)| Completion { ticket: r.0, result: Ok(Done::Read(d)) })),
            Err(e) if reads.len() == 1 => out.push(Completion { ticket: reads[0].0, result: Err(e) }),
            // One bad request fails the whole vfs batch: find out which by asking one at a time.
            Err(_) => {
                for (ticket, file, offset, len) in reads.iter() {
                    let result = self.batch(&[(file, *offset, *len)]).map(|mut d| Done::Read(d.remove(0)));
                    out.push(Completion { ticket: *ticket, result });
                }
            }
        }
        reads.clear();
    }

    /// One vfs batch read, re-sent (with re-opened files) after a vfs restart.
    fn batch(&mut self, reads: &[(&Rc<Inner<T>>, u64, usize)]) -> Result<Vec<Vec<u8>>> {
        let total: usize = reads.iter().map(|r| r.2).sum();
        let mut buf = vec![0u8; total];
        let mut tries = 0;
        loop {
            let epoch = self.fs.epoch();
            self.calls += 1;
            let r = reads
                .iter()
                .map(|(f, offset, len)| Ok(ReadReq { fd: f.fd()?, offset: *offset, len: *len as u32 }))
                .collect::<Result<Vec<_>>>()
                .and_then(|reqs| Ok(self.fs.client().batch_read(reqs, &mut buf)?));
            let restarted = self.fs.epoch() != epoch || matches!(&r, Err(e) if e.kind() == ErrorKind::ServerRestarted);
            if !restarted {
                let counts = r?;
                // One count per read, each within its slot, or the reply is broken.
                if counts.len() != reads.len() || counts.iter().zip(reads).any(|(&n, r)| n as usize > r.2) {
                    return Err(protocol::Error::Malformed.into());
                }
                let mut at = 0;
                return Ok(reads
                    .iter()
                    .zip(counts)
                    .map(|(req, n)| {
                        let d = buf[at..at + n as usize].to_vec();
                        at += req.2;
                        d
                    })
                    .collect());
            }
            if tries >= MAX_REOPENS {
                return Err(protocol::Error::ServerRestarted.into());
            }
            tries += 1;
        }
    }

    /// A positioned write: seek and write, leaving the file's own position alone.
    fn write_at(&mut self, file: &Inner<T>, offset: u64, data: &[u8]) -> Result<usize> {
        let at = i64::try_from(offset).map_err(|_| Error::new(ErrorKind::InvalidInput))?;
        let mut done = 0;
        while done < data.len() {
            let chunk = &data[done..data.len().min(done + MAX_IO)];
            self.calls += 2;
            // The seek is safe to redo after a restart; only the write's outcome can be unknown.
            let r = file
                .idempotent(Need::Fd, |c, fd| c.seek(fd, Whence::Start, at + done as i64))
                .and_then(|_| file.once(Need::Fd, |c, fd| c.write(fd, chunk)));
            // Wherever the vfs offset ended up, it is not the file's position any more.
            file.vfs_moved(None);
            let n = r? as usize;
            if n > chunk.len() {
                return Err(protocol::Error::Malformed.into());
            }
            if n == 0 {
                return Err(Error::new(ErrorKind::WriteZero));
            }
            done += n;
        }
        Ok(done)
    }
}
