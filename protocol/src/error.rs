//! The one error type shared by every WATOS server and client.
//!
//! Design: variants are coarse on purpose (they map 1:1 onto errno values, which is what FUSE and
//! POSIX callers need) but the storage variants carry the detail a person needs to act on: which block
//! failed its checksum, which structure is corrupt. Errors are values returned to a caller; they are
//! never used for faults (a faulting task is killed by the kernel, not sent an `Error`).

use serde::{Deserialize, Serialize};

/// Result alias used across the protocol and the server libraries.
pub type Result<T> = core::result::Result<T, Error>;

/// What went wrong, as seen by the caller of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Error {
    /// No such file or directory (ENOENT).
    NotFound,
    /// The name already exists (EEXIST).
    AlreadyExists,
    /// A path component that must be a directory is not one (ENOTDIR).
    NotADirectory,
    /// The operation needs a non-directory (EISDIR).
    IsADirectory,
    /// rmdir or rename onto a directory that still has entries (ENOTEMPTY).
    DirectoryNotEmpty,
    /// An argument is out of range or inconsistent (EINVAL).
    InvalidArgument,
    /// A name component is longer than the filesystem allows (ENAMETOOLONG).
    NameTooLong,
    /// No free blocks or inodes are left (ENOSPC).
    NoSpace,
    /// The filesystem or file is read-only (EROFS).
    ReadOnly,
    /// The file descriptor is not open, or not open for this access (EBADF).
    BadFileDescriptor,
    /// The per-process descriptor table is full (EMFILE).
    TooManyOpenFiles,
    /// Access denied by permissions (EACCES).
    PermissionDenied,
    /// Operation not permitted, e.g. on the root directory (EPERM).
    NotPermitted,
    /// This filesystem or server does not implement the operation (ENOTSUP).
    NotSupported,
    /// Rename or link across mounts (EXDEV).
    CrossDevice,
    /// The file would grow past the filesystem's maximum size (EFBIG).
    FileTooLarge,
    /// Too many hard links (EMLINK).
    TooManyLinks,
    /// The resource is in use, e.g. a second transaction while one is open (EBUSY).
    Busy,
    /// A symbolic-link loop or too many links followed (ELOOP).
    TooManyLevels,
    /// Device I/O failed at this byte offset of the device (EIO).
    Io { offset: u64 },
    /// A block's checksum did not match the one stored with its pointer (EIO). Never returned as data.
    Checksum { block: u64 },
    /// An on-disk structure is inconsistent; `block` names where it was found (EIO / EUCLEAN).
    Corrupt { block: u64 },
    /// The transaction id is unknown, already finished, or belongs to someone else (EINVAL).
    NoSuchTransaction,
    /// The message could not be decoded or is not valid for this server (EBADMSG).
    Malformed,
    /// A message or lease is larger than the protocol allows (E2BIG).
    TooBig,
    /// The server restarted while this request was in flight; its outcome is unknown (ERESTART-like).
    ServerRestarted,
    /// The server is gone and was not restarted (ENXIO-like).
    ServerDead,
    /// The operation would block and the caller asked not to (EAGAIN).
    WouldBlock,
    /// The call was interrupted before completing (EINTR).
    Interrupted,
    /// A transaction's commit met another process's change to the same thing since it began; the
    /// transaction was rolled back (ECANCELED).
    Conflict,
}

impl Error {
    /// The Linux errno value closest to this error, for FUSE replies and POSIX-style callers.
    pub const fn errno(&self) -> i32 {
        match self {
            Error::NotFound => 2,
            Error::AlreadyExists => 17,
            Error::NotADirectory => 20,
            Error::IsADirectory => 21,
            Error::DirectoryNotEmpty => 39,
            Error::InvalidArgument => 22,
            Error::NameTooLong => 36,
            Error::NoSpace => 28,
            Error::ReadOnly => 30,
            Error::BadFileDescriptor => 9,
            Error::TooManyOpenFiles => 24,
            Error::PermissionDenied => 13,
            Error::NotPermitted => 1,
            Error::NotSupported => 95,
            Error::CrossDevice => 18,
            Error::FileTooLarge => 27,
            Error::TooManyLinks => 31,
            Error::Busy => 16,
            Error::TooManyLevels => 40,
            Error::Io { .. } | Error::Checksum { .. } | Error::Corrupt { .. } => 5,
            Error::NoSuchTransaction => 22,
            Error::Malformed => 74,
            Error::TooBig => 7,
            Error::ServerRestarted => 85,
            Error::ServerDead => 6,
            Error::WouldBlock => 11,
            Error::Interrupted => 4,
            Error::Conflict => 125,
        }
    }

    /// How many kinds of error there are ([`Error::ALL`]'s length).
    pub const KINDS: usize = 30;

    /// One error of every kind, detail 0, in declaration order: `ALL[e.kind()]` is `e`'s kind.
    pub const ALL: [Error; Error::KINDS] = [
        Error::NotFound,
        Error::AlreadyExists,
        Error::NotADirectory,
        Error::IsADirectory,
        Error::DirectoryNotEmpty,
        Error::InvalidArgument,
        Error::NameTooLong,
        Error::NoSpace,
        Error::ReadOnly,
        Error::BadFileDescriptor,
        Error::TooManyOpenFiles,
        Error::PermissionDenied,
        Error::NotPermitted,
        Error::NotSupported,
        Error::CrossDevice,
        Error::FileTooLarge,
        Error::TooManyLinks,
        Error::Busy,
        Error::TooManyLevels,
        Error::Io { offset: 0 },
        Error::Checksum { block: 0 },
        Error::Corrupt { block: 0 },
        Error::NoSuchTransaction,
        Error::Malformed,
        Error::TooBig,
        Error::ServerRestarted,
        Error::ServerDead,
        Error::WouldBlock,
        Error::Interrupted,
        Error::Conflict,
    ];

    /// This error's kind, an index into [`Error::ALL`] (the detail, such as a block, is ignored).
    pub const fn kind(&self) -> usize {
        match self {
            Error::NotFound => 0,
            Error::AlreadyExists => 1,
            Error::NotADirectory => 2,
            Error::IsADirectory => 3,
            Error::DirectoryNotEmpty => 4,
            Error::InvalidArgument => 5,
            Error::NameTooLong => 6,
            Error::NoSpace => 7,
            Error::ReadOnly => 8,
            Error::BadFileDescriptor => 9,
            Error::TooManyOpenFiles => 10,
            Error::PermissionDenied => 11,
            Error::NotPermitted => 12,
            Error::NotSupported => 13,
            Error::CrossDevice => 14,
            Error::FileTooLarge => 15,
            Error::TooManyLinks => 16,
            Error::Busy => 17,
            Error::TooManyLevels => 18,
            Error::Io { .. } => 19,
            Error::Checksum { .. } => 20,
            Error::Corrupt { .. } => 21,
            Error::NoSuchTransaction => 22,
            Error::Malformed => 23,
            Error::TooBig => 24,
            Error::ServerRestarted => 25,
            Error::ServerDead => 26,
            Error::WouldBlock => 27,
            Error::Interrupted => 28,
            Error::Conflict => 29,
        }
    }

    /// The kind's name without its detail (`NotFound`, `Io`).
    pub const fn name(&self) -> &'static str {
        match self {
            Error::Io { .. } => "Io",
            Error::Checksum { .. } => "Checksum",
            Error::Corrupt { .. } => "Corrupt",
            Error::NotFound => "NotFound",
            Error::AlreadyExists => "AlreadyExists",
            Error::NotADirectory => "NotADirectory",
            Error::IsADirectory => "IsADirectory",
            Error::DirectoryNotEmpty => "DirectoryNotEmpty",
            Error::InvalidArgument => "InvalidArgument",
            Error::NameTooLong => "NameTooLong",
            Error::NoSpace => "NoSpace",
            Error::ReadOnly => "ReadOnly",
            Error::BadFileDescriptor => "BadFileDescriptor",
            Error::TooManyOpenFiles => "TooManyOpenFiles",
            Error::PermissionDenied => "PermissionDenied",
            Error::NotPermitted => "NotPermitted",
            Error::NotSupported => "NotSupported",
            Error::CrossDevice => "CrossDevice",
            Error::FileTooLarge => "FileTooLarge",
            Error::TooManyLinks => "TooManyLinks",
            Error::Busy => "Busy",
            Error::TooManyLevels => "TooManyLevels",
            Error::NoSuchTransaction => "NoSuchTransaction",
            Error::Malformed => "Malformed",
            Error::TooBig => "TooBig",
            Error::ServerRestarted => "ServerRestarted",
            Error::ServerDead => "ServerDead",
            Error::WouldBlock => "WouldBlock",
            Error::Interrupted => "Interrupted",
            Error::Conflict => "Conflict",
        }
    }

    /// True when a client may transparently retry an idempotent request (reads, lookups).
    pub const fn is_restart(&self) -> bool {
        matches!(self, Error::ServerRestarted)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Io { offset } => write!(f, "I/O error at device offset {offset}"),
            Error::Checksum { block } => write!(f, "checksum mismatch in block {block}"),
            Error::Corrupt { block } => write!(f, "corrupt filesystem structure at block {block}"),
            other => write!(f, "{other:?} (errno {})", other.errno()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_values_match_linux() {
        assert_eq!(Error::NotFound.errno(), 2);
        assert_eq!(Error::Checksum { block: 9 }.errno(), 5);
        assert_eq!(Error::DirectoryNotEmpty.errno(), 39);
    }

    #[test]
    fn storage_errors_name_their_block() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(Error::Checksum { block: 42 }.to_string(), "checksum mismatch in block 42");
    }

    #[test]
    fn every_kind_has_its_index_and_a_name() {
        extern crate std;
        use std::format;
        for (i, e) in Error::ALL.iter().enumerate() {
            assert_eq!(e.kind(), i);
            assert!(format!("{e:?}").starts_with(e.name()), "{e:?}");
        }
        assert_eq!(Error::Checksum { block: 9 }.kind(), Error::ALL[20].kind());
    }

    #[test]
    fn errors_round_trip_through_postcard() {
        let e = Error::Corrupt { block: 7 };
        let bytes = postcard::to_allocvec(&e).unwrap();
        assert_eq!(postcard::from_bytes::<Error>(&bytes).unwrap(), e);
    }
}
