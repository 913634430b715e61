//! The interface-definition macro: one definition per interface generates everything both sides need.
//!
//! Design (in the spirit of Hubris's Idol, but a `macro_rules!` so no build script or proc-macro is
//! needed in the bare-metal build): [`interface!`](crate::interface) takes a list of operations, each with
//! an operation code, an idempotency marker (`idempotent` or `once`), a request variant name, typed
//! arguments, optional leases (name and rights) and a reply type, and generates in the invoking module:
//! - `VERSION`, `OPS` (name, code, idempotency of every operation), and a compile-time assertion that
//!   no two operations share a code;
//! - `Request<'a>`, the request enum, with `encode`/`decode`/`op`; arguments may borrow from the message
//!   (`&'a str`), so a server decodes paths without copying;
//! - `Client<T: Transport>`, a typed stub with one method per operation: the method encodes, lends its
//!   buffers as the declared leases, calls, and decodes the reply; `idempotent` operations are retried
//!   (after refreshing the server id) when the server restarted, `once` operations report
//!   `ServerRestarted` because their outcome is unknown; a fenced channel (`Channel::fence`, set
//!   while a client holds server-side state that a restart destroys, a transaction) moves on to
//!   the new server only once the fence is lifted: until then every call fails;
//! - `Handler`, the server trait (one method per operation, receiving the call context with its checked
//!   leases), `dispatch` and `Service<H>` (a [`Server`](crate::ipc::Server) that runs `dispatch`).
//!
//! Wire format. Request: `postcard(Header { version, op, indirect })` then `postcard((arg0, arg1, ...))`.
//! When header and arguments do not fit [`MAX_MESSAGE`] inline (long paths), `indirect` is set, the
//! message is the header alone, and the arguments travel in one extra `Read` lease placed right after
//! the operation's declared leases. The stub also lends a [`MAX_INDIRECT`]-byte `Write` lease as a
//! reply area, last. Reply: one byte, then either (`0`) `postcard(Result<Reply, Error>)` inline, or
//! (`1`) the length of that encoding, which the server wrote into the reply area because it did not
//! fit inline (a page of directory entries). Every part must be consumed exactly: trailing bytes are
//! [`Error::Malformed`]. A server never panics on a bad message: it replies `Malformed` (undecodable),
//! `NotSupported` (other protocol version), `InvalidArgument` (missing or wrongly-lent leases) or
//! `TooBig` (a reply that fits nowhere), never a cut reply.

use core::cell::Cell;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use alloc::vec::Vec;

use crate::ipc::{Lease, LeaseAccess, LeaseKind, TaskId, Transport, MAX_INDIRECT, MAX_MESSAGE};
use crate::{Error, Result};

/// The envelope every request starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub version: u16,
    pub op: u16,
    /// The arguments are in the lease after the declared ones, not after this header.
    pub indirect: bool,
}

/// Description of one operation of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpInfo {
    pub name: &'static str,
    pub op: u16,
    pub idempotent: bool,
}

/// Whether every code in `ops` differs from the others; the [`interface!`](crate::interface) macro
/// asserts it at compile time for every interface.
pub const fn ops_unique(ops: &[u16]) -> bool {
    let mut i = 0;
    while i < ops.len() {
        let mut j = i + 1;
        while j < ops.len() {
            if ops[i] == ops[j] {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

/// How many times a stub re-sends an idempotent request to a restarted server before giving up.
pub const MAX_RETRIES: u32 = 3;

/// Reply prefix: the encoded result follows inline.
const REPLY_INLINE: u8 = 0;
/// Reply prefix: the encoded result is in the reply-area lease; its length follows.
const REPLY_IN_LEASE: u8 = 1;

/// Encode an inline request (header and arguments) into `buf`; `TooBig` if it does not fit.
pub fn encode_request<A: Serialize + ?Sized>(buf: &mut [u8], version: u16, op: u16, args: &A) -> Result<usize> {
    postcard::to_slice(&(Header { version, op, indirect: false }, args), buf)
        .map(|s| s.len())
        .map_err(|_| Error::TooBig)
}

/// Split a request into its header and the bytes after it.
pub fn decode_header(msg: &[u8]) -> Result<(Header, &[u8])> {
    postcard::take_from_bytes::<Header>(msg).map_err(|_| Error::Malformed)
}

/// Decode `bytes` as exactly one `T`; trailing bytes are `Malformed`.
pub fn decode_exact<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        _ => Err(Error::Malformed),
    }
}

/// Decode an encoded `Result<R>`, flattening the server's error into the result.
pub fn decode_reply<R: DeserializeOwned>(bytes: &[u8]) -> Result<R> {
    decode_exact::<Result<R>>(bytes)?
}

/// Decode a whole reply: the inline message and, when it says so, the reply area.
pub fn decode_reply_parts<R: DeserializeOwned>(inline: &[u8], area: &[u8]) -> Result<R> {
    match inline.split_first() {
        Some((&REPLY_INLINE, rest)) => decode_reply(rest),
        Some((&REPLY_IN_LEASE, rest)) => {
            let len = decode_exact::<u32>(rest)? as usize;
            decode_reply(area.get(..len).ok_or(Error::Malformed)?)
        }
        _ => Err(Error::Malformed),
    }
}

/// The error an encoded reply carries, if it is an inline error reply (server side: what the call
/// it answers failed with). Error replies are always inline; a reply in the reply area is a success.
pub fn reply_error(reply: &[u8]) -> Option<Error> {
    match reply {
        // `Result` encodes `Err` as variant 1.
        [REPLY_INLINE, 1, rest @ ..] => postcard::take_from_bytes::<Error>(rest).ok().map(|(e, _)| e),
        _ => None,
    }
}

/// A short inline error reply (always fits).
fn error_reply(reply: &mut [u8], e: Error) -> Result<usize> {
    let (first, rest) = reply.split_first_mut().ok_or(Error::TooBig)?;
    *first = REPLY_INLINE;
    let n = postcard::to_slice(&Result::<()>::Err(e), rest).map_err(|_| Error::TooBig)?.len();
    Ok(n + 1)
}

/// Server side: encode `result` inline if it fits, else into the reply-area lease `area`, else reply
/// `TooBig`. Returns the inline reply length.
pub fn finish_reply<R: Serialize>(
    reply: &mut [u8],
    leases: &mut dyn LeaseAccess,
    area: Option<usize>,
    result: &Result<R>,
) -> Result<usize> {
    // Most replies fit inline: encode straight into the message, and only otherwise into a buffer
    // for the reply area.
    let inline_cap = reply.len().min(MAX_MESSAGE);
    if inline_cap > 1 {
        if let Ok(encoded) = postcard::to_slice(result, &mut reply[1..inline_cap]) {
            let len = encoded.len();
            reply[0] = REPLY_INLINE;
            return Ok(len + 1);
        }
    }
    let mut buf = alloc::vec![0u8; MAX_INDIRECT];
    let Ok(encoded) = postcard::to_slice(result, &mut buf) else { return error_reply(reply, Error::TooBig) };
    let len = encoded.len();
    match area {
        Some(i) if leases.len(i)? >= len => {
            leases.write(i, 0, encoded)?;
            let (first, rest) = reply.split_first_mut().ok_or(Error::TooBig)?;
            *first = REPLY_IN_LEASE;
            let n = postcard::to_slice(&(len as u32), rest).map_err(|_| Error::TooBig)?.len();
            Ok(n + 1)
        }
        _ => error_reply(reply, Error::TooBig),
    }
}

/// Check the leases of an incoming call: the declared ones with at least the rights the operation
/// needs, then the out-of-line request body (`Read`) if the header says `indirect`, then optionally a
/// reply area (`Write`). Returns the reply area's index.
pub fn check_leases(leases: &dyn LeaseAccess, declared: &[LeaseKind], indirect: bool) -> Result<Option<usize>> {
    let base = declared.len() + usize::from(indirect);
    let count = leases.count();
    if count < base || count > base + 1 {
        return Err(Error::InvalidArgument);
    }
    for (i, want) in declared.iter().enumerate() {
        let have = leases.kind(i)?;
        let ok = match want {
            LeaseKind::ReadWrite => have == LeaseKind::ReadWrite,
            other => have == *other || have == LeaseKind::ReadWrite,
        };
        if !ok {
            return Err(Error::InvalidArgument);
        }
    }
    if indirect && leases.kind(declared.len())? == LeaseKind::Write {
        return Err(Error::InvalidArgument);
    }
    if count == base + 1 {
        if leases.kind(base)? == LeaseKind::Read {
            return Err(Error::InvalidArgument);
        }
        return Ok(Some(base));
    }
    Ok(None)
}

/// Server side: the request's argument bytes, inline after the header or, for an indirect request,
/// copied out of the body lease (at index `declared`) into `scratch`.
pub fn request_body<'m>(
    header: &Header,
    rest: &'m [u8],
    leases: &dyn LeaseAccess,
    declared: usize,
    scratch: &'m mut Vec<u8>,
) -> Result<&'m [u8]> {
    if !header.indirect {
        return Ok(rest);
    }
    if !rest.is_empty() {
        return Err(Error::Malformed);
    }
    let len = leases.len(declared)?;
    if len > MAX_INDIRECT {
        return Err(Error::TooBig);
    }
    scratch.resize(len, 0);
    leases.read(declared, 0, scratch)?;
    Ok(scratch)
}

/// Buffer an out-of-line request body is copied into (re-exported for the generated code).
pub type Scratch = Vec<u8>;

/// `String` for generated code in crates that do not name `alloc`.
#[doc(hidden)]
pub use alloc::string::String;

/// Reborrow a lease for a nested call.
fn reborrow<'s>(lease: &'s mut Lease<'_>) -> Lease<'s> {
    match lease {
        Lease::Read(b) => Lease::Read(b),
        Lease::Write(b) => Lease::Write(b),
        Lease::ReadWrite(b) => Lease::ReadWrite(b),
    }
}

/// Client side of every generated stub method: encode (inline or out of line), lend the user leases
/// plus the body and reply-area leases, call with the retry policy, decode.
pub fn call<T: Transport, A: Serialize + ?Sized, R: DeserializeOwned>(
    channel: &Channel<T>,
    idempotent: bool,
    version: u16,
    op: u16,
    args: &A,
    user: &mut [Lease<'_>],
) -> Result<R> {
    let mut msg = [0u8; MAX_MESSAGE];
    // Almost every request fits inline; only the others pay for the out-of-line buffer.
    let mut body = Vec::new();
    let (msg_len, indirect) = match encode_request(&mut msg, version, op, args) {
        Ok(n) => (n, false),
        Err(_) => {
            body = postcard::to_allocvec(args).map_err(|_| Error::TooBig)?;
            if body.len() > MAX_INDIRECT {
                return Err(Error::TooBig);
            }
            let n =
                postcard::to_slice(&Header { version, op, indirect: true }, &mut msg).map_err(|_| Error::TooBig)?.len();
            (n, true)
        }
    };
    let mut area = [0u8; MAX_INDIRECT];
    let mut reply = [0u8; MAX_MESSAGE];
    let len = {
        let mut leases: Vec<Lease<'_>> = user.iter_mut().map(reborrow).collect();
        if indirect {
            leases.push(Lease::Read(&body));
        }
        leases.push(Lease::Write(&mut area));
        channel.call(idempotent, &msg[..msg_len], &mut leases, &mut reply)?
    };
    decode_reply_parts(&reply[..len], &area)
}

/// The client side shared by every generated stub: where the server is and the retry policy.
pub struct Channel<T> {
    transport: T,
    server: Cell<TaskId>,
    restarts: Cell<u32>,
    /// Fences standing, and the restart count when the first was set.
    fences: Cell<u32>,
    fenced_at: Cell<u32>,
}

impl<T: Transport> Channel<T> {
    pub fn new(transport: T, server: TaskId) -> Self {
        Channel {
            transport,
            server: Cell::new(server),
            restarts: Cell::new(0),
            fences: Cell::new(0),
            fenced_at: Cell::new(0),
        }
    }

    /// Fence the channel: once a server restart is noticed, every call fails with
    /// `NoSuchTransaction` without being sent (the in-flight one that noticed it with
    /// `ServerRestarted` if it is `once`), until every fence is lifted. A transaction sets one, so
    /// that calls meant for it never reach a new server that knows nothing of it. Fences nest.
    pub fn fence(&self) {
        if self.fences.get() == 0 {
            self.fenced_at.set(self.restarts.get());
        }
        self.fences.set(self.fences.get() + 1);
    }

    /// Lift one fence; true if a server restart was noticed while it stood.
    pub fn unfence(&self) -> bool {
        self.fences.set(self.fences.get().saturating_sub(1));
        self.fenced_at.get() != self.restarts.get()
    }

    fn fenced_off(&self) -> bool {
        self.fences.get() > 0 && self.fenced_at.get() != self.restarts.get()
    }

    /// The server id calls go to now.
    pub fn server(&self) -> TaskId {
        self.server.get()
    }

    /// How many server restarts this channel has noticed; a change tells a caller to re-establish
    /// server-side state (open files) that the old incarnation held.
    pub fn restarts(&self) -> u32 {
        self.restarts.get()
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Send one encoded request, retrying idempotent ones after a server restart.
    pub fn call(&self, idempotent: bool, msg: &[u8], leases: &mut [Lease<'_>], reply: &mut [u8]) -> Result<usize> {
        let mut tries = 0;
        if self.fenced_off() {
            return Err(Error::NoSuchTransaction);
        }
        loop {
            match self.transport.call(self.server.get(), msg, leases, reply) {
                Err(Error::ServerRestarted) => {
                    let now = self.transport.refresh(self.server.get())?;
                    self.server.set(now);
                    self.restarts.set(self.restarts.get().wrapping_add(1));
                    if idempotent && self.fenced_off() {
                        return Err(Error::NoSuchTransaction);
                    }
                    if !idempotent || tries >= MAX_RETRIES {
                        return Err(Error::ServerRestarted);
                    }
                    tries += 1;
                }
                other => return other,
            }
        }
    }
}

#[doc(hidden)]
#[macro_export]
macro_rules! __idl_idempotent {
    (idempotent) => {
        true
    };
    (once) => {
        false
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __idl_lease_param {
    (Read) => {
        &[u8]
    };
    (Write) => {
        &mut [u8]
    };
    (ReadWrite) => {
        &mut [u8]
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __idl_lease_new {
    (Read, $b:expr) => {
        $crate::ipc::Lease::Read($b)
    };
    (Write, $b:expr) => {
        $crate::ipc::Lease::Write($b)
    };
    (ReadWrite, $b:expr) => {
        $crate::ipc::Lease::ReadWrite($b)
    };
}

/// Define an interface; see the [module documentation](crate::idl) for what it generates.
///
/// ```ignore
/// interface! {
///     version 1;
///     /// Read sectors into the lent buffer.
///     2 idempotent Read fn read(sector: u64) leases(buf: Write) -> ();
/// }
/// ```
#[macro_export]
macro_rules! interface {
    (
        version $ver:literal;
        $(
            $(#[doc = $doc:literal])*
            $op:literal $kind:ident $Variant:ident fn $name:ident ( $($arg:ident : $aty:ty),* $(,)? )
                $( leases ( $($lease:ident : $lkind:ident),* $(,)? ) )?
                -> $ret:ty ;
        )*
    ) => {
        /// Protocol version carried in every request envelope.
        pub const VERSION: u16 = $ver;

        /// Every operation: name, code and whether clients may retry it after a server restart.
        pub const OPS: &[$crate::idl::OpInfo] = &[
            $($crate::idl::OpInfo { name: stringify!($name), op: $op, idempotent: $crate::__idl_idempotent!($kind) },)*
        ];

        // Two operations with one code would make one of them unreachable: refuse to compile.
        const _: () = assert!($crate::idl::ops_unique(&[$($op),*]), "two operations share an operation code");

        /// A decoded request. Arguments may borrow from the message they were decoded from.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(clippy::large_enum_variant)]
        pub enum Request<'a> {
            $( $(#[doc = $doc])* $Variant { $($arg: $aty),* }, )*
            #[doc(hidden)]
            __Lifetime(core::marker::PhantomData<&'a ()>),
        }

        impl<'a> Request<'a> {
            /// The operation code of this request.
            pub fn op(&self) -> u16 {
                match self {
                    $(Request::$Variant { .. } => $op,)*
                    Request::__Lifetime(_) => u16::MAX,
                }
            }

            /// Encode inline into `buf` (header with [`VERSION`] and the operation code, then the
            /// arguments); `TooBig` if it does not fit `buf`.
            pub fn encode(&self, buf: &mut [u8]) -> $crate::Result<usize> {
                match self {
                    $(Request::$Variant { $($arg),* } => $crate::idl::encode_request(buf, VERSION, $op, &($($arg,)*)),)*
                    Request::__Lifetime(_) => Err($crate::Error::InvalidArgument),
                }
            }

            /// Decode an inline request; never panics on arbitrary bytes.
            pub fn decode(msg: &'a [u8]) -> $crate::Result<Request<'a>> {
                let (header, rest) = $crate::idl::decode_header(msg)?;
                if header.version != VERSION {
                    return Err($crate::Error::NotSupported);
                }
                if header.indirect {
                    return Err($crate::Error::Malformed);
                }
                Self::decode_body(header.op, rest)
            }

            /// Decode the arguments of operation `op`.
            pub fn decode_body(op: u16, body: &'a [u8]) -> $crate::Result<Request<'a>> {
                match op {
                    $($op => {
                        #[allow(unused_parens, clippy::let_unit_value)]
                        let ($($arg,)*) = $crate::idl::decode_exact::<($($aty,)*)>(body)?;
                        Ok(Request::$Variant { $($arg),* })
                    })*
                    _ => Err($crate::Error::Malformed),
                }
            }

            /// The leases operation `op` declares, or None for an unknown operation.
            pub fn declared_leases(op: u16) -> Option<&'static [$crate::ipc::LeaseKind]> {
                match op {
                    $($op => Some(&[$($($crate::ipc::LeaseKind::$lkind),*)?]),)*
                    _ => None,
                }
            }
        }

        /// Typed client stub: one method per operation.
        pub struct Client<T> {
            pub channel: $crate::idl::Channel<T>,
        }

        impl<T: $crate::ipc::Transport> Client<T> {
            pub fn new(transport: T, server: $crate::ipc::TaskId) -> Self {
                Client { channel: $crate::idl::Channel::new(transport, server) }
            }

            $(
                $(#[doc = $doc])*
                #[allow(clippy::too_many_arguments, clippy::needless_lifetimes, clippy::extra_unused_lifetimes, clippy::unused_unit)]
                pub fn $name<'a>(&self, $($arg: $aty,)* $($($lease: $crate::__idl_lease_param!($lkind),)*)?) -> $crate::Result<$ret> {
                    let user: &mut [$crate::ipc::Lease<'_>] = &mut [$($($crate::__idl_lease_new!($lkind, $lease),)*)?];
                    $crate::idl::call::<T, _, $ret>(&self.channel, $crate::__idl_idempotent!($kind), VERSION, $op, &($(&$arg,)*), user)
                }
            )*
        }

        /// The server side: implement this and serve it with [`Service`] or [`dispatch`].
        pub trait Handler {
            $(
                $(#[doc = $doc])*
                #[allow(clippy::too_many_arguments, clippy::needless_lifetimes, clippy::extra_unused_lifetimes)]
                fn $name<'a>(&mut self, cx: &mut $crate::ipc::Incoming<'_, '_>, $($arg: $aty),*) -> $crate::Result<$ret>;
            )*
        }

        /// Decode `msg`, run the handler method, encode its result into `reply`. Bad messages and bad
        /// leases become error replies; the server keeps serving.
        pub fn dispatch<H: Handler + ?Sized>(
            handler: &mut H,
            msg: &[u8],
            cx: &mut $crate::ipc::Incoming<'_, '_>,
            reply: &mut [u8],
        ) -> $crate::Result<usize> {
            let (header, rest) = match $crate::idl::decode_header(msg) {
                Ok(h) => h,
                Err(e) => return $crate::idl::finish_reply::<()>(reply, &mut *cx.leases, None, &Err(e)),
            };
            if header.version != VERSION {
                return $crate::idl::finish_reply::<()>(reply, &mut *cx.leases, None, &Err($crate::Error::NotSupported));
            }
            let Some(declared) = Request::declared_leases(header.op) else {
                return $crate::idl::finish_reply::<()>(reply, &mut *cx.leases, None, &Err($crate::Error::Malformed));
            };
            let area = match $crate::idl::check_leases(&*cx.leases, declared, header.indirect) {
                Ok(area) => area,
                Err(e) => return $crate::idl::finish_reply::<()>(reply, &mut *cx.leases, None, &Err(e)),
            };
            let mut scratch = $crate::idl::Scratch::new();
            let request = match $crate::idl::request_body(&header, rest, &*cx.leases, declared.len(), &mut scratch)
                .and_then(|body| Request::decode_body(header.op, body))
            {
                Ok(r) => r,
                Err(e) => return $crate::idl::finish_reply::<()>(reply, &mut *cx.leases, area, &Err(e)),
            };
            match request {
                $(Request::$Variant { $($arg),* } => {
                    let result = handler.$name(cx, $($arg),*);
                    $crate::idl::finish_reply::<$ret>(reply, &mut *cx.leases, area, &result)
                })*
                Request::__Lifetime(_) => $crate::idl::finish_reply::<()>(reply, &mut *cx.leases, area, &Err($crate::Error::Malformed)),
            }
        }

        /// A [`Handler`] served over IPC.
        pub struct Service<H>(pub H);

        impl<H: Handler> $crate::ipc::Server for Service<H> {
            fn handle(&mut self, msg: &[u8], cx: &mut $crate::ipc::Incoming<'_, '_>, reply: &mut [u8]) -> $crate::Result<usize> {
                dispatch(&mut self.0, msg, cx, reply)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_unique_finds_a_shared_code() {
        assert!(ops_unique(&[]));
        assert!(ops_unique(&[1, 2, 30]));
        assert!(!ops_unique(&[1, 2, 3, 2]));
        assert!(!ops_unique(&[7, 7]));
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        let bytes = postcard::to_allocvec(&(5u32, 6u32)).unwrap();
        assert_eq!(decode_exact::<u32>(&bytes), Err(Error::Malformed));
        assert_eq!(decode_exact::<(u32, u32)>(&bytes), Ok((5, 6)));
    }

    #[test]
    fn replies_go_inline_in_the_area_or_become_too_big() {
        let mut area = [0u8; 600];
        let mut backing = [Lease::Write(&mut area)];
        let mut leases = crate::ipc::Leases::new(&mut backing);
        let mut reply = [0u8; MAX_MESSAGE];
        let n = finish_reply(&mut reply, &mut leases, Some(0), &Ok(7u32)).unwrap();
        assert_eq!(decode_reply_parts::<u32>(&reply[..n], &[]), Ok(7));
        // The error a reply carries, read back; successes carry none.
        let n =
            finish_reply(&mut reply, &mut leases, Some(0), &Result::<u32>::Err(Error::Corrupt { block: 9 })).unwrap();
        assert_eq!(reply_error(&reply[..n]), Some(Error::Corrupt { block: 9 }));
        let n = finish_reply(&mut reply, &mut leases, Some(0), &Ok(1u32)).unwrap();
        assert_eq!(reply_error(&reply[..n]), None);
        assert_eq!(reply_error(&[]), None);
        let big = Ok(alloc::vec![9u8; 500]);
        let n = finish_reply(&mut reply, &mut leases, Some(0), &big).unwrap();
        assert!(n < 8, "only the length is inline");
        assert_eq!(decode_reply_parts::<alloc::vec::Vec<u8>>(&reply[..n], &area), big);
        let n = finish_reply(&mut reply, &mut crate::ipc::Leases::new(&mut []), None, &big).unwrap();
        assert_eq!(decode_reply_parts::<alloc::vec::Vec<u8>>(&reply[..n], &[]), Err(Error::TooBig));
        assert_eq!(decode_reply_parts::<u32>(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f], &[]), Err(Error::Malformed));
        let huge = [0u8; MAX_MESSAGE * 2];
        assert_eq!(encode_request(&mut [0u8; MAX_MESSAGE], 1, 1, &huge[..]), Err(Error::TooBig));
    }
}
