//! Request timing: how long the vfs server takes for each kind of operation, and which errors it
//! replies with.
//!
//! Design: [`VfsServer::serve`] wraps the generated dispatch. It reads the operation code from the
//! request's header, reads the server's clock (a `protocol::latency::Ticks`: the TSC in vfs-server,
//! a fake one in tests, none by default) before and after, and files the difference under the
//! operation's kind (`OpKind::of`) in a `Recorder`; an error reply (`idl::reply_error`) counts
//! under its error kind, whichever operation it answers, bad messages included. So every request is
//! timed the same way, from its decoding to its encoded reply, without touching the operations
//! themselves. The `timing` operation reports the summaries with the clock's rate.

use alloc::boxed::Box;
use alloc::vec::Vec;

use protocol::api::vfs::{dispatch, OpKind, VfsTiming};
use protocol::idl::{decode_header, reply_error};
use protocol::ipc::{Incoming, Server};
use protocol::latency::{ErrorCounts, Recorder, Ticks};
use protocol::{Error, Result};

use crate::VfsServer;

/// Latencies by kind of operation and errors by kind.
#[derive(Debug, Clone, Default)]
pub(crate) struct OpTimes {
    kinds: [Recorder; OpKind::ALL.len()],
    errors: ErrorCounts,
}

impl OpTimes {
    fn record(&mut self, op: u16, ticks: u64, error: Option<Error>) {
        self.kinds[OpKind::of(op).index()].record(ticks);
        if let Some(e) = error {
            self.errors.count(&e);
        }
    }

    pub(crate) fn report(&self, tick_hz: u64) -> VfsTiming {
        let ops: Vec<_> =
            OpKind::ALL.iter().zip(&self.kinds).filter(|(_, r)| r.count > 0).map(|(k, r)| (*k, r.summary())).collect();
        VfsTiming { tick_hz, ops, errors: self.errors.nonzero() }
    }
}

impl VfsServer {
    /// Time requests with `clock` (untimed requests still count, with 0 ticks).
    pub fn with_clock(mut self, clock: Box<dyn Ticks>) -> Self {
        self.clock = clock;
        self
    }

    /// Serve one request through the generated dispatch, timed and its error counted.
    pub fn serve(&mut self, msg: &[u8], cx: &mut Incoming<'_, '_>, reply: &mut [u8]) -> Result<usize> {
        // A message without a header still gets an (error) reply: filed under `Other`.
        let op = decode_header(msg).map(|(h, _)| h.op).unwrap_or(u16::MAX);
        let t0 = self.clock.now();
        let r = dispatch(self, msg, cx, reply);
        let dt = self.clock.now().saturating_sub(t0);
        let error = match &r {
            Ok(n) => reply.get(..*n).and_then(reply_error),
            Err(e) => Some(*e),
        };
        self.times.record(op, dt, error);
        r
    }
}

impl Server for VfsServer {
    fn handle(&mut self, msg: &[u8], cx: &mut Incoming<'_, '_>, reply: &mut [u8]) -> Result<usize> {
        self.serve(msg, cx, reply)
    }
}
