//! Errors as applications see them: a familiar `io::ErrorKind`-like kind plus the server's detail.
//!
//! Design: programs branch on [`ErrorKind`] (as they do with `std::io::ErrorKind`), people read the
//! `Display` text, and the exact `protocol::Error` (which block failed its checksum, the errno) stays
//! available through [`Error::server_error`]. Errors that arise in this layer (a short write, bad
//! UTF-8) have no server detail.

use core::fmt;

/// Result alias of the file API.
pub type Result<T> = core::result::Result<T, Error>;

/// The category of an error, named after `std::io::ErrorKind` where one exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    NotFound,
    PermissionDenied,
    AlreadyExists,
    NotADirectory,
    IsADirectory,
    DirectoryNotEmpty,
    InvalidInput,
    /// Data or an on-disk structure is bad: checksum mismatch, corruption, undecodable message, bad UTF-8.
    InvalidData,
    InvalidFilename,
    StorageFull,
    ReadOnlyFilesystem,
    FileTooLarge,
    CrossesDevices,
    TooManyLinks,
    FilesystemLoop,
    ResourceBusy,
    Unsupported,
    WouldBlock,
    Interrupted,
    /// The device failed (EIO).
    Io,
    UnexpectedEof,
    WriteZero,
    /// The descriptor is not open for this kind of access.
    BadDescriptor,
    TooManyOpenFiles,
    /// A server restarted while the request was in flight and its outcome cannot be proven.
    ServerRestarted,
    /// A server is gone and was not restarted.
    ServerDead,
    /// No transaction with that id (already finished, or another process's).
    NoSuchTransaction,
    /// A transaction's commit conflicted with another process's change; it was rolled back.
    Conflict,
}

impl ErrorKind {
    /// The short lower-case phrase a shell prints.
    pub const fn as_str(self) -> &'static str {
        use ErrorKind::*;
        match self {
            NotFound => "not found",
            PermissionDenied => "permission denied",
            AlreadyExists => "already exists",
            NotADirectory => "not a directory",
            IsADirectory => "is a directory",
            DirectoryNotEmpty => "directory not empty",
            InvalidInput => "invalid argument",
            InvalidData => "invalid data",
            InvalidFilename => "file name too long",
            StorageFull => "no space left on device",
            ReadOnlyFilesystem => "read-only filesystem",
            FileTooLarge => "file too large",
            CrossesDevices => "cross-device link",
            TooManyLinks => "too many links",
            FilesystemLoop => "too many levels of symbolic links",
            ResourceBusy => "resource busy",
            Unsupported => "operation not supported",
            WouldBlock => "operation would block",
            Interrupted => "interrupted",
            Io => "input/output error",
            UnexpectedEof => "unexpected end of file",
            WriteZero => "write returned zero bytes",
            BadDescriptor => "bad file descriptor",
            TooManyOpenFiles => "too many open files",
            ServerRestarted => "server restarted during the request",
            ServerDead => "server is not running",
            NoSuchTransaction => "no such transaction",
            Conflict => "transaction conflict",
        }
    }
}

/// An error of the file API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    server: Option<protocol::Error>,
}

impl Error {
    /// An error made in this layer, with no server detail.
    pub const fn new(kind: ErrorKind) -> Self {
        Error { kind, server: None }
    }

    pub const fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The server's error, when a server reported this one.
    pub const fn server_error(&self) -> Option<protocol::Error> {
        self.server
    }

    /// The errno closest to this error (the server's when it has one).
    pub const fn errno(&self) -> i32 {
        match self.server {
            Some(e) => e.errno(),
            None => match self.kind {
                ErrorKind::InvalidData => 74,
                ErrorKind::UnexpectedEof | ErrorKind::WriteZero | ErrorKind::Io => 5,
                _ => 22,
            },
        }
    }
}

impl From<protocol::Error> for Error {
    fn from(e: protocol::Error) -> Self {
        use protocol::Error as P;
        let kind = match e {
            P::NotFound => ErrorKind::NotFound,
            P::AlreadyExists => ErrorKind::AlreadyExists,
            P::NotADirectory => ErrorKind::NotADirectory,
            P::IsADirectory => ErrorKind::IsADirectory,
            P::DirectoryNotEmpty => ErrorKind::DirectoryNotEmpty,
            P::InvalidArgument | P::TooBig => ErrorKind::InvalidInput,
            P::NameTooLong => ErrorKind::InvalidFilename,
            P::NoSpace => ErrorKind::StorageFull,
            P::ReadOnly => ErrorKind::ReadOnlyFilesystem,
            P::BadFileDescriptor => ErrorKind::BadDescriptor,
            P::TooManyOpenFiles => ErrorKind::TooManyOpenFiles,
            P::PermissionDenied | P::NotPermitted => ErrorKind::PermissionDenied,
            P::NotSupported => ErrorKind::Unsupported,
            P::CrossDevice => ErrorKind::CrossesDevices,
            P::FileTooLarge => ErrorKind::FileTooLarge,
            P::TooManyLinks => ErrorKind::TooManyLinks,
            P::Busy => ErrorKind::ResourceBusy,
            P::TooManyLevels => ErrorKind::FilesystemLoop,
            P::Io { .. } => ErrorKind::Io,
            P::Checksum { .. } | P::Corrupt { .. } | P::Malformed => ErrorKind::InvalidData,
            P::NoSuchTransaction => ErrorKind::NoSuchTransaction,
            P::ServerRestarted => ErrorKind::ServerRestarted,
            P::ServerDead => ErrorKind::ServerDead,
            P::WouldBlock => ErrorKind::WouldBlock,
            P::Interrupted => ErrorKind::Interrupted,
            P::Conflict => ErrorKind::Conflict,
        };
        Error { kind, server: Some(e) }
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error::new(kind)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        // Only the storage errors carry detail worth a person's attention.
        match self.server {
            Some(
                e @ (protocol::Error::Io { .. } | protocol::Error::Checksum { .. } | protocol::Error::Corrupt { .. }),
            ) => {
                write!(f, " ({e})")
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn kinds_keep_the_server_detail() {
        let e = Error::from(protocol::Error::Checksum { block: 42 });
        assert_eq!(e.kind(), ErrorKind::InvalidData);
        assert_eq!(e.server_error(), Some(protocol::Error::Checksum { block: 42 }));
        assert_eq!(e.errno(), 5);
        assert_eq!(e.to_string(), "invalid data (checksum mismatch in block 42)");
    }

    /// Every server error, with a detail where it has one.
    const ALL: [protocol::Error; 30] = {
        use protocol::Error::*;
        [
            NotFound,
            AlreadyExists,
            NotADirectory,
            IsADirectory,
            DirectoryNotEmpty,
            InvalidArgument,
            NameTooLong,
            NoSpace,
            ReadOnly,
            BadFileDescriptor,
            TooManyOpenFiles,
            PermissionDenied,
            NotPermitted,
            NotSupported,
            CrossDevice,
            FileTooLarge,
            TooManyLinks,
            Busy,
            TooManyLevels,
            Io { offset: 4096 },
            Checksum { block: 7 },
            Corrupt { block: 9 },
            NoSuchTransaction,
            Malformed,
            TooBig,
            ServerRestarted,
            ServerDead,
            WouldBlock,
            Interrupted,
            Conflict,
        ]
    };

    #[test]
    fn every_server_error_keeps_its_errno_and_detail_and_reads_as_its_kind() {
        use protocol::Error as P;
        let mut kinds = alloc::vec::Vec::new();
        for e in ALL {
            let f = Error::from(e);
            assert_eq!(f.server_error(), Some(e));
            assert_eq!(f.errno(), e.errno(), "{e:?}: the program sees the server's errno");
            let text = f.to_string();
            assert!(text.starts_with(f.kind().as_str()), "{e:?}: {text}");
            let detailed = matches!(e, P::Io { .. } | P::Checksum { .. } | P::Corrupt { .. });
            assert_eq!(text.len() > f.kind().as_str().len(), detailed, "{e:?}: only storage errors carry detail");
            kinds.push(f.kind());
        }
        // Server errors with their own errno get their own kind; the merges are the documented ones
        // (EACCES and EPERM, EINVAL and E2BIG, bad checksums, corruption and undecodable messages).
        kinds.sort_by_key(|k| *k as u8);
        kinds.dedup();
        assert_eq!(kinds.len(), ALL.len() - 4, "{kinds:?}");
        // Errors of this layer have no server detail and the nearest errno.
        assert_eq!(Error::new(ErrorKind::UnexpectedEof).errno(), 5);
        assert_eq!(Error::new(ErrorKind::InvalidData).errno(), 74);
        assert_eq!(Error::new(ErrorKind::WriteZero).to_string(), "write returned zero bytes");
    }

    #[test]
    fn common_errors_read_like_a_shell() {
        assert_eq!(Error::from(protocol::Error::NotFound).to_string(), "not found");
        assert_eq!(Error::from(protocol::Error::NotPermitted).kind(), ErrorKind::PermissionDenied);
        assert_eq!(Error::new(ErrorKind::WriteZero).server_error(), None);
        assert_eq!(Error::from(protocol::Error::ServerRestarted).kind(), ErrorKind::ServerRestarted);
    }
}
