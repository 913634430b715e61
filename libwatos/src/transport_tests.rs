//! The serve loop against a scripted kernel: what it answers, when it ticks, idles and stops; and the
//! client half's reading of a call's result, down to the error its caller sees.
//!
//! Design: `Script` plays the kernel's part of `Endpoint` from a queue of events (a call with its
//! bytes, a notification, "nobody waiting") and records every reply and notification, so each test
//! states what the kernel delivers and checks exactly what the loop did with it. The server is a
//! counter that answers `fail` with an error and anything else with its reply count and the bytes.

extern crate std;

use super::*;
use alloc::collections::VecDeque;
use alloc::vec;

/// One thing the scripted kernel delivers.
enum Event {
    Call {
        sender: u64,
        msg: &'static [u8],
        leases: u64,
    },
    Notify(u64),
    /// `try_receive` finds nobody waiting (a blocking `receive` never sees this).
    Empty,
    Fail(SysError),
}

/// No leases: the scripted calls carry none the server reads.
struct NoLeases(usize);

impl LeaseAccess for NoLeases {
    fn count(&self) -> usize {
        self.0
    }
    fn len(&self, _: usize) -> Result<usize> {
        Err(Error::InvalidArgument)
    }
    fn kind(&self, _: usize) -> Result<LeaseKind> {
        Err(Error::InvalidArgument)
    }
    fn read(&self, _: usize, _: usize, _: &mut [u8]) -> Result<()> {
        Err(Error::InvalidArgument)
    }
    fn write(&mut self, _: usize, _: usize, _: &[u8]) -> Result<()> {
        Err(Error::InvalidArgument)
    }
}

#[derive(Default)]
struct Script {
    events: VecDeque<Event>,
    /// (client, bytes, code) per reply.
    replies: Vec<(u64, Vec<u8>, u32)>,
    notified: Vec<(u64, u64)>,
    /// Which receive each event went to: `true` for a blocking one.
    blocking: Vec<bool>,
    /// Replies to this client fail as to a caller that died.
    dead_client: Option<u64>,
}

impl Script {
    fn new(events: Vec<Event>) -> Self {
        Script { events: events.into(), ..Default::default() }
    }

    fn next(&mut self, buf: &mut [u8], blocking: bool) -> SysResult<Option<RecvInfo>> {
        self.blocking.push(blocking);
        match self.events.pop_front().expect("the loop received past the end of the script") {
            Event::Call { sender, msg, leases } => {
                buf[..msg.len()].copy_from_slice(msg);
                Ok(Some(RecvInfo { sender, len: msg.len() as u64, leases, ..Default::default() }))
            }
            Event::Notify(bits) => {
                Ok(Some(RecvInfo { sender: NOTIFICATION, notifications: bits, ..Default::default() }))
            }
            Event::Empty => {
                assert!(!blocking, "a blocking receive waits instead of finding nobody");
                Ok(None)
            }
            Event::Fail(e) => Err(e),
        }
    }
}

impl Endpoint for Script {
    type Leases = NoLeases;
    fn receive(&mut self, buf: &mut [u8], _mask: u64) -> SysResult<RecvInfo> {
        self.next(buf, true).map(|i| i.unwrap())
    }
    fn try_receive(&mut self, buf: &mut [u8], _mask: u64) -> SysResult<Option<RecvInfo>> {
        self.next(buf, false)
    }
    fn leases(&mut self, info: &RecvInfo) -> NoLeases {
        NoLeases(info.leases as usize)
    }
    fn reply(&mut self, client: u64, msg: &[u8], code: u32) -> SysResult<()> {
        self.replies.push((client, msg.to_vec(), code));
        if self.dead_client == Some(client) {
            return Err(SysError::TaskDied);
        }
        Ok(())
    }
    fn notify(&mut self, task: u64, bits: u64) -> SysResult<()> {
        self.notified.push((task, bits));
        Ok(())
    }
}

/// Answers `fail` with `NotFound`, anything else with [calls so far, lease count, the bytes...].
#[derive(Default)]
struct Counter {
    calls: u8,
    ticks: u32,
    callers: Vec<TaskId>,
}

impl Server for Counter {
    fn handle(&mut self, msg: &[u8], cx: &mut Incoming<'_, '_>, reply: &mut [u8]) -> Result<usize> {
        self.calls += 1;
        self.callers.push(cx.caller());
        if msg == b"fail" {
            return Err(Error::NotFound);
        }
        reply[0] = self.calls;
        reply[1] = cx.leases.count() as u8;
        reply[2..2 + msg.len()].copy_from_slice(msg);
        Ok(2 + msg.len())
    }
}

const STOP: u64 = 0b01;
const TICK: u64 = 0b10;
const CLIENT: u64 = 0x0002_0005;

#[test]
fn calls_are_answered_and_errors_travel_as_their_own_code() {
    let mut k = Script::new(vec![
        Event::Call { sender: CLIENT, msg: b"hi", leases: 2 },
        Event::Call { sender: CLIENT, msg: b"fail", leases: 0 },
        Event::Notify(STOP),
    ]);
    let mut server = Counter::default();
    assert_eq!(serve_loop(&mut k, &mut server, STOP, 0, None, None), Ok(()));
    assert_eq!(k.replies.len(), 2);
    assert_eq!(k.replies[0], (CLIENT, vec![1, 2, b'h', b'i'], 0));
    let (client, bytes, code) = &k.replies[1];
    assert_eq!((*client, *code), (CLIENT, CODE_ERROR));
    assert_eq!(postcard::from_bytes::<Error>(bytes), Ok(Error::NotFound), "the client decodes the same error");
    assert_eq!(server.callers, [from_kernel(CLIENT); 2], "the caller is the id the kernel vouched for");
    assert!(k.blocking.iter().all(|&b| b), "without idle work every wait blocks");
}

#[test]
fn tick_bits_tick_between_calls_and_stop_wins_over_tick() {
    let mut k = Script::new(vec![
        Event::Notify(TICK),
        Event::Call { sender: CLIENT, msg: b"x", leases: 0 },
        Event::Notify(TICK),
        Event::Notify(TICK | STOP),
    ]);
    let mut server = Counter::default();
    let r = serve_loop(&mut k, &mut server, STOP, TICK, None, Some(&mut |s: &mut Counter| s.ticks += 1));
    assert_eq!(r, Ok(()));
    assert_eq!(server.ticks, 2, "a stop that arrives with a tick stops without ticking");
    assert_eq!(server.calls, 1);
    assert!(k.events.is_empty());
}

#[test]
fn a_notification_outside_the_tick_bits_stops_the_loop() {
    // The kernel only delivers masked bits; any that is not a tick is the stop request.
    let mut k = Script::new(vec![Event::Notify(STOP), Event::Call { sender: CLIENT, msg: b"late", leases: 0 }]);
    let mut server = Counter::default();
    assert_eq!(serve_loop(&mut k, &mut server, STOP, TICK, None, None), Ok(()));
    assert_eq!(server.calls, 0);
    assert_eq!(k.events.len(), 1, "nothing is received after the stop");
}

#[test]
fn idle_work_runs_only_when_nobody_waits_and_wakes_whom_it_names() {
    let mut k = Script::new(vec![
        Event::Call { sender: CLIENT, msg: b"a", leases: 0 },
        Event::Empty,
        Event::Empty,
        Event::Call { sender: CLIENT, msg: b"b", leases: 0 },
        Event::Notify(STOP),
    ]);
    let mut server = Counter::default();
    let mut runs = Vec::new();
    let mut idle = |s: &mut Counter| {
        runs.push(s.calls);
        // First idle: work done, two tasks to wake (one with an id the kernel cannot have issued).
        // Second: nothing to do, so the loop sleeps in a blocking receive.
        (runs.len() == 1).then(|| vec![(from_kernel(CLIENT), 0x40), (TaskId::new(1, 1 << 20), 0x40)])
    };
    assert_eq!(serve_loop(&mut k, &mut server, STOP, 0, Some(&mut idle), None), Ok(()));
    assert_eq!(runs, [1, 1], "idle work runs after the waiting call was answered");
    assert_eq!(k.notified, [(CLIENT, 0x40)], "an impossible task id is not notified");
    // try (call a), try (empty: idle works), try (empty: idle has nothing) then block (call b), try (stop).
    assert_eq!(k.blocking, [false, false, false, true, false]);
    assert_eq!(k.replies.len(), 2);
}

#[test]
fn a_dead_caller_does_not_stop_the_server_but_a_failed_receive_does() {
    let mut k = Script::new(vec![
        Event::Call { sender: CLIENT, msg: b"1", leases: 0 },
        Event::Call { sender: CLIENT + 1, msg: b"2", leases: 0 },
        Event::Fail(SysError::OutOfMemory),
    ]);
    k.dead_client = Some(CLIENT);
    let mut server = Counter::default();
    assert_eq!(serve_loop(&mut k, &mut server, STOP, 0, None, None), Err(Error::NoSpace));
    assert_eq!(k.replies.iter().map(|r| r.0).collect::<Vec<_>>(), [CLIENT, CLIENT + 1]);
}

#[test]
fn an_oversized_reply_length_is_clamped_to_the_message_size() {
    struct Liar;
    impl Server for Liar {
        fn handle(&mut self, _: &[u8], _: &mut Incoming<'_, '_>, _: &mut [u8]) -> Result<usize> {
            Ok(usize::MAX)
        }
    }
    let mut k = Script::new(vec![Event::Call { sender: CLIENT, msg: b"", leases: 0 }, Event::Notify(STOP)]);
    assert_eq!(serve_loop(&mut k, &mut Liar, STOP, 0, None, None), Ok(()));
    assert_eq!(k.replies[0].1.len(), MAX_MESSAGE);
}

#[test]
fn a_call_result_is_the_reply_or_exactly_the_servers_error() {
    let none = |_: TaskId| -> Result<TaskId> { panic!("only a dead server is looked up again") };
    let to = from_kernel(CLIENT);
    assert_eq!(call_result(Ok((3, 0)), &[0; 8], to, none), Ok(3));
    let mut buf = [0u8; 16];
    let n = postcard::to_slice(&Error::Corrupt { block: 9 }, &mut buf).unwrap().len();
    assert_eq!(call_result(Ok((n, CODE_ERROR)), &buf, to, none), Err(Error::Corrupt { block: 9 }));
    assert_eq!(call_result(Ok((2, CODE_ERROR)), &[0xff, 0xff], to, none), Err(Error::Malformed), "undecodable");
    assert_eq!(call_result(Ok((99, CODE_ERROR)), &buf, to, none), Err(Error::Malformed), "past the buffer");
    assert_eq!(call_result(Ok((0, 7)), &buf, to, none), Err(Error::Malformed), "unknown code");
    assert_eq!(call_result(Err(SysError::MessageTooBig), &buf, to, none), Err(Error::TooBig));
    assert_eq!(call_result(Err(SysError::WouldDeadlock), &buf, to, none), Err(Error::Busy));
}

#[test]
fn a_dead_server_is_restarted_only_if_its_name_names_a_newer_task() {
    let to = TaskId::new(5, 2);
    let newer = |_: TaskId| Ok(TaskId::new(5, 3));
    let same = |t: TaskId| Ok(t);
    let gone = |_: TaskId| Err(Error::NotFound);
    assert_eq!(call_result(Err(SysError::TaskDied), &[], to, newer), Err(Error::ServerRestarted));
    assert_eq!(call_result(Err(SysError::TaskDied), &[], to, same), Err(Error::ServerDead));
    assert_eq!(call_result(Err(SysError::TaskDied), &[], to, gone), Err(Error::ServerDead));
    assert_eq!(call_result(Err(SysError::NoSuchTask), &[], to, newer), Err(Error::ServerDead), "no look-up");
}
