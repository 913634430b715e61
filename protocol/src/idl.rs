//! The interface-definition macro: one definition per interface generates everything both sides need.
//!
//! Design (in the spirit of Hubris's Idol, but a `macro_rules!` so no build script or proc-macro is
//! needed in the bare-metal build): [`interface!`](crate::interface) takes a list of operations, each with
//! an operation code, an idempotency marker (`idempotent` or `once`), a request variant name, typed
//! arguments, optional leases (name and rights) and a reply type, and generates in the invoking module:
//! - `VERSION`, `OPS` (name, code, idempotency of every operation);
//! - `Request<'a>`, the request enum, with `encode`/`decode`/`op`; arguments may borrow from the message
//!   (`&'a str`), so a server decodes paths without copying;
//! - `Client<T: Transport>`, a typed stub with one method per operation: the method encodes, lends its
//!   buffers as the declared leases, calls, and decodes the reply; `idempotent` operations are retried
//!   (after refreshing the server id) when the server restarted, `once` operations report
//!   `ServerRestarted` because their outcome is unknown;
//! - `Handler`, the server trait (one method per operation, receiving the call context with its checked
//!   leases), `dispatch` and `Service<H>` (a [`Server`](crate::ipc::Server) that runs `dispatch`).
//!
//! Wire format: `postcard((Header { version, op }, (arg0, arg1, ...)))` for requests, `postcard(Result<Reply,
//! Error>)` for replies. Both must be consumed exactly: trailing bytes are [`Error::Malformed`]. A server
//! never panics on a bad message: it replies `Malformed` (undecodable), `NotSupported` (other protocol
//! version or unknown operation) or `InvalidArgument` (missing or wrongly-lent leases). A reply that does
//! not fit [`MAX_MESSAGE`] is replaced by `Err(TooBig)`, never cut.

use core::cell::Cell;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ipc::{Lease, LeaseAccess, LeaseKind, TaskId, Transport};
use crate::{Error, Result};

/// The envelope every request starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub version: u16,
    pub op: u16,
}

/// Description of one operation of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpInfo {
    pub name: &'static str,
    pub op: u16,
    pub idempotent: bool,
}

/// How many times a stub re-sends an idempotent request to a restarted server before giving up.
pub const MAX_RETRIES: u32 = 3;

/// Encode a request into `buf`; `TooBig` if it does not fit.
pub fn encode_request<A: Serialize + ?Sized>(buf: &mut [u8], version: u16, op: u16, args: &A) -> Result<usize> {
    postcard::to_slice(&(Header { version, op }, args), buf).map(|s| s.len()).map_err(|_| Error::TooBig)
}

/// Split a request into its header and argument bytes.
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

/// Encode a reply; a reply too big for the message is replaced by `Err(TooBig)`.
pub fn encode_reply<R: Serialize>(buf: &mut [u8], reply: &Result<R>) -> Result<usize> {
    match postcard::to_slice(reply, buf) {
        Ok(s) => Ok(s.len()),
        Err(_) => postcard::to_slice(&Result::<()>::Err(Error::TooBig), buf).map(|s| s.len()).map_err(|_| Error::TooBig),
    }
}

/// Decode a reply, flattening the server's error into the result.
pub fn decode_reply<R: DeserializeOwned>(bytes: &[u8]) -> Result<R> {
    decode_exact::<Result<R>>(bytes)?
}

/// Check the leases of an incoming call against the declared ones: same count, and each lent with at
/// least the rights the operation needs.
pub fn check_leases(leases: &dyn LeaseAccess, declared: &[LeaseKind]) -> Result<()> {
    if leases.count() != declared.len() {
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
    Ok(())
}

/// The client side shared by every generated stub: where the server is and the retry policy.
pub struct Channel<T> {
    transport: T,
    server: Cell<TaskId>,
    restarts: Cell<u32>,
}

impl<T: Transport> Channel<T> {
    pub fn new(transport: T, server: TaskId) -> Self {
        Channel { transport, server: Cell::new(server), restarts: Cell::new(0) }
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
        loop {
            match self.transport.call(self.server.get(), msg, leases, reply) {
                Err(Error::ServerRestarted) => {
                    let now = self.transport.refresh(self.server.get())?;
                    self.server.set(now);
                    self.restarts.set(self.restarts.get().wrapping_add(1));
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
    (Read) => { &[u8] };
    (Write) => { &mut [u8] };
    (ReadWrite) => { &mut [u8] };
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

            /// Encode into `buf` (header with [`VERSION`] and the operation code, then the arguments).
            pub fn encode(&self, buf: &mut [u8]) -> $crate::Result<usize> {
                match self {
                    $(Request::$Variant { $($arg),* } => $crate::idl::encode_request(buf, VERSION, $op, &($($arg,)*)),)*
                    Request::__Lifetime(_) => Err($crate::Error::InvalidArgument),
                }
            }

            /// Decode a request; never panics on arbitrary bytes.
            pub fn decode(msg: &'a [u8]) -> $crate::Result<Request<'a>> {
                let (header, rest) = $crate::idl::decode_header(msg)?;
                if header.version != VERSION {
                    return Err($crate::Error::NotSupported);
                }
                match header.op {
                    $($op => {
                        #[allow(unused_parens, clippy::let_unit_value)]
                        let ($($arg,)*) = $crate::idl::decode_exact::<($($aty,)*)>(rest)?;
                        Ok(Request::$Variant { $($arg),* })
                    })*
                    _ => Err($crate::Error::Malformed),
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
                    let mut msg = [0u8; $crate::ipc::MAX_MESSAGE];
                    let n = $crate::idl::encode_request(&mut msg, VERSION, $op, &($(&$arg,)*))?;
                    let leases: &mut [$crate::ipc::Lease<'_>] = &mut [$($($crate::__idl_lease_new!($lkind, $lease),)*)?];
                    let mut reply = [0u8; $crate::ipc::MAX_MESSAGE];
                    let len = self.channel.call($crate::__idl_idempotent!($kind), &msg[..n], leases, &mut reply)?;
                    $crate::idl::decode_reply::<$ret>(&reply[..len])
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
            let request = match Request::decode(msg) {
                Ok(r) => r,
                Err(e) => return $crate::idl::encode_reply::<()>(reply, &Err(e)),
            };
            match request {
                $(Request::$Variant { $($arg),* } => {
                    let declared: &[$crate::ipc::LeaseKind] = &[$($($crate::ipc::LeaseKind::$lkind),*)?];
                    let result = match $crate::idl::check_leases(&*cx.leases, declared) {
                        Ok(()) => handler.$name(cx, $($arg),*),
                        Err(e) => Err(e),
                    };
                    $crate::idl::encode_reply::<$ret>(reply, &result)
                })*
                Request::__Lifetime(_) => $crate::idl::encode_reply::<()>(reply, &Err($crate::Error::Malformed)),
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
    use crate::ipc::MAX_MESSAGE;

    #[test]
    fn trailing_bytes_are_malformed() {
        let bytes = postcard::to_allocvec(&(5u32, 6u32)).unwrap();
        assert_eq!(decode_exact::<u32>(&bytes), Err(Error::Malformed));
        assert_eq!(decode_exact::<(u32, u32)>(&bytes), Ok((5, 6)));
    }

    #[test]
    fn oversize_reply_becomes_too_big_error() {
        let mut buf = [0u8; 8];
        let n = encode_reply(&mut buf, &Ok([7u8; 32])).unwrap();
        assert_eq!(decode_reply::<[u8; 32]>(&buf[..n]), Err(Error::TooBig));
        let big = [0u8; MAX_MESSAGE * 2];
        assert_eq!(encode_request(&mut [0u8; MAX_MESSAGE], 1, 1, &big[..]), Err(Error::TooBig));
    }
}
