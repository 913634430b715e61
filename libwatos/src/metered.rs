//! A filesystem server that counts its own cycles: [`Metered`].
//!
//! Design: `service::run_filesystem` serves a filesystem through `Metered` around its `FsService`
//! (the generated dispatch behind the rule that only the vfs makes most operations). It reads a clock (the TSC on WATOS) around every request and every
//! background call (`FileSystem::background`, the daemon) and keeps a `protocol::daemon::CpuMeter`;
//! the one request it answers itself is `daemon_stats`, whose reply is the filesystem's report
//! with the meter's cycles added (daemon, busy, elapsed, the clock's rate), so a client sees the
//! daemon's share of the time without the filesystem library knowing about the clock. Anything that
//! is not exactly a well-formed `daemon_stats` request goes to the generated dispatch, errors
//! included.

use protocol::api::filesystem::{FsServer, FsService, OPS, VERSION};
use protocol::daemon::CpuMeter;
use protocol::fs::FileSystem;
use protocol::idl::{check_leases, decode_header, finish_reply};
use protocol::ipc::{Incoming, Server};
use protocol::latency::Ticks;
use protocol::Result;

/// `fs` served over the filesystem interface, its requests and daemon timed with `clock`.
pub struct Metered<F, C> {
    pub service: FsService<F>,
    clock: C,
    meter: CpuMeter,
    /// The operation code of `daemon_stats`.
    daemon_stats: u16,
}

impl<F: FileSystem, C: Ticks> Metered<F, C> {
    pub fn new(server: FsServer<F>, mut clock: C) -> Self {
        let daemon_stats = OPS.iter().find(|o| o.name == "daemon_stats").map_or(u16::MAX, |o| o.op);
        let meter = CpuMeter::new(clock.now());
        Metered { service: FsService(server), clock, meter, daemon_stats }
    }

    pub fn fs(&mut self) -> &mut F {
        &mut self.service.0.fs
    }

    pub fn into_fs(self) -> F {
        self.service.0.fs
    }

    /// One daemon tick (`FileSystem::background`), counted; returns its next delay.
    pub fn background(&mut self) -> Option<u64> {
        let t0 = self.clock.now();
        let next = self.service.0.fs.background();
        let dt = self.clock.now().saturating_sub(t0);
        self.meter.background(dt);
        next
    }

    fn is_daemon_stats(&self, msg: &[u8]) -> bool {
        matches!(decode_header(msg), Ok((h, [])) if h.version == VERSION && h.op == self.daemon_stats && !h.indirect)
    }

    fn daemon_stats(&mut self, cx: &mut Incoming<'_, '_>, reply: &mut [u8]) -> Result<usize> {
        let area = match check_leases(&*cx.leases, &[], false) {
            Ok(area) => area,
            Err(e) => return finish_reply::<()>(reply, &mut *cx.leases, None, &Err(e)),
        };
        let (now, hz) = (self.clock.now(), self.clock.hz());
        let report = self.service.0.fs.daemon_stats().map(|s| self.meter.report(s, now, hz));
        finish_reply(reply, &mut *cx.leases, area, &report)
    }
}

impl<F: FileSystem, C: Ticks> Server for Metered<F, C> {
    fn handle(&mut self, msg: &[u8], cx: &mut Incoming<'_, '_>, reply: &mut [u8]) -> Result<usize> {
        let t0 = self.clock.now();
        let r =
            if self.is_daemon_stats(msg) { self.daemon_stats(cx, reply) } else { self.service.handle(msg, cx, reply) };
        let dt = self.clock.now().saturating_sub(t0);
        self.meter.request(dt);
        r
    }
}

#[cfg(test)]
mod tests {
    use std::boxed::Box;
    use std::cell::RefCell;
    use std::rc::Rc;

    use blockdev::RamDisk;
    use fat::{FatFs, FormatOptions};
    use protocol::api::filesystem::Client;
    use protocol::fs::{FixedClock, Timespec};
    use protocol::ipc::Server;
    use protocol::local::LocalIpc;

    use super::*;

    /// A clock that moves 100 ticks at every reading (1 MHz).
    #[derive(Clone, Default)]
    pub(super) struct Stepping(pub(super) u64);

    impl Ticks for Stepping {
        fn now(&mut self) -> u64 {
            self.0 += 100;
            self.0
        }
        fn hz(&mut self) -> u64 {
            1_000_000
        }
    }

    pub(super) fn fat() -> FatFs<RamDisk> {
        FatFs::format(RamDisk::new(8192), &FormatOptions::default(), Box::new(FixedClock(Timespec::new(5, 0)))).unwrap()
    }

    #[test]
    fn daemon_stats_carry_the_daemon_and_busy_cycles() {
        // Readings: 100 at the start; 200 and 300 around the background call.
        let mut m = Metered::new(FsServer::new(fat()), Stepping::default());
        assert!(m.background().is_some(), "FAT's daemon runs on a timer");
        let ipc = LocalIpc::new();
        let shared = Rc::new(RefCell::new(m));
        let served = shared.clone();
        let id = ipc.spawn("fs", Box::new(move |_| Box::new(Shared(served.clone())))).unwrap();
        let c = Client::new(ipc, id);
        // 400 and 600 around the request, 500 in the reply.
        let d = c.daemon_stats().unwrap();
        assert_eq!((d.daemon_cycles, d.busy_cycles, d.elapsed_cycles, d.tick_hz), (100, 100, 400, 1_000_000));
        assert_eq!(d.ticks, 1, "the filesystem's own report is kept");
        // 700 and 800 around statfs (busy, not daemon); then 900, 1000 in the reply.
        c.statfs().unwrap();
        let e = c.daemon_stats().unwrap();
        assert_eq!((e.daemon_cycles, e.busy_cycles, e.elapsed_cycles), (100, 400, 900));
        assert_eq!((e.daemon_pct_since(&d), e.busy_pct_since(&d)), (0.0, 60.0));
        assert_eq!(e.daemon_pct_since(&Default::default()), 100.0 * 100.0 / 900.0);
        // The second stats request's own 200 ticks are counted once it is done.
        let mut want = CpuMeter::new(100);
        want.background(100);
        want.request(500);
        assert_eq!(shared.borrow().meter, want);
    }

    #[test]
    fn a_malformed_daemon_stats_request_goes_to_the_dispatch() {
        let mut m = Metered::new(FsServer::new(fat()), Stepping::default());
        let mut msg = [0u8; 16];
        // The right header with a trailing byte: not the exact request, so the dispatch refuses it.
        let n = protocol::idl::encode_request(&mut msg, VERSION, m.daemon_stats, &(7u8,)).unwrap();
        assert!(!m.is_daemon_stats(&msg[..n]));
        let mut reply = [0u8; 64];
        let len = m
            .handle(
                &msg[..n],
                &mut Incoming::new(protocol::ipc::TaskId::new(1, 0), &mut protocol::ipc::Leases::new(&mut [])),
                &mut reply,
            )
            .unwrap();
        assert_eq!(protocol::idl::reply_error(&reply[..len]), Some(protocol::Error::Malformed));
        let n = protocol::idl::encode_request(&mut msg, VERSION, m.daemon_stats, &()).unwrap();
        assert!(m.is_daemon_stats(&msg[..n]));
    }

    /// The metered server shared with the test, as `LocalIpc` serves it.
    struct Shared(Rc<RefCell<Metered<FatFs<RamDisk>, Stepping>>>);

    impl Server for Shared {
        fn handle(&mut self, msg: &[u8], cx: &mut Incoming<'_, '_>, reply: &mut [u8]) -> Result<usize> {
            self.0.borrow_mut().handle(msg, cx, reply)
        }
    }
}

#[cfg(test)]
#[path = "metered_tests.rs"]
mod access_tests;
