//! Conversions between fuser's types and the `protocol::fs` types, and errors to errno values.
//!
//! Design: pure functions, so the mapping rules (times before the epoch, mknod modes, non-UTF-8
//! names) are unit-tested without a mount.

use std::ffi::OsStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, TimeOrNow};
use protocol::fs::{FileType, Timespec};
use protocol::Error;

pub fn errno(e: Error) -> Errno {
    Errno::from_i32(e.errno())
}

pub fn to_system_time(t: Timespec) -> SystemTime {
    if t.secs >= 0 {
        UNIX_EPOCH + Duration::new(t.secs as u64, t.nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs()) + Duration::from_nanos(t.nanos as u64)
    }
}

pub fn from_system_time(t: SystemTime) -> Timespec {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timespec::new(d.as_secs() as i64, d.subsec_nanos()),
        Err(before) => {
            let d = before.duration();
            match d.subsec_nanos() {
                0 => Timespec::new(-(d.as_secs() as i64), 0),
                n => Timespec::new(-(d.as_secs() as i64) - 1, 1_000_000_000 - n),
            }
        }
    }
}

pub fn kind(k: FileType) -> fuser::FileType {
    match k {
        FileType::File => fuser::FileType::RegularFile,
        FileType::Directory => fuser::FileType::Directory,
        FileType::Symlink => fuser::FileType::Symlink,
        FileType::Fifo => fuser::FileType::NamedPipe,
        FileType::Socket => fuser::FileType::Socket,
        FileType::CharDevice => fuser::FileType::CharDevice,
        FileType::BlockDevice => fuser::FileType::BlockDevice,
    }
}

/// The node kind a `mknod` mode asks for.
pub fn kind_from_mode(mode: u32) -> Result<FileType, Error> {
    match mode & libc::S_IFMT {
        0 | libc::S_IFREG => Ok(FileType::File),
        libc::S_IFIFO => Ok(FileType::Fifo),
        libc::S_IFSOCK => Ok(FileType::Socket),
        libc::S_IFCHR => Ok(FileType::CharDevice),
        libc::S_IFBLK => Ok(FileType::BlockDevice),
        libc::S_IFDIR => Ok(FileType::Directory),
        _ => Err(Error::InvalidArgument),
    }
}

pub fn time_or_now(t: TimeOrNow) -> Timespec {
    match t {
        TimeOrNow::SpecificTime(t) => from_system_time(t),
        TimeOrNow::Now => from_system_time(SystemTime::now()),
    }
}

/// Names are UTF-8 in every WATOS filesystem; anything else cannot exist there.
pub fn name_str(name: &OsStr) -> Result<&str, Error> {
    name.to_str().ok_or(Error::InvalidArgument)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_conversion_round_trips_both_sides_of_the_epoch() {
        for t in [
            Timespec::new(0, 0),
            Timespec::new(1_700_000_000, 123),
            Timespec::new(-1, 999_999_999),
            Timespec::new(-86400, 5),
        ] {
            assert_eq!(from_system_time(to_system_time(t)), t, "{t:?}");
        }
    }

    #[test]
    fn mknod_modes_map_to_kinds() {
        assert_eq!(kind_from_mode(libc::S_IFIFO | 0o644), Ok(FileType::Fifo));
        assert_eq!(kind_from_mode(libc::S_IFCHR), Ok(FileType::CharDevice));
        assert_eq!(kind_from_mode(0o644), Ok(FileType::File));
        assert_eq!(kind_from_mode(0o170000), Err(Error::InvalidArgument));
    }

    #[test]
    fn errors_map_to_errno() {
        assert_eq!(errno(Error::NotFound).code(), libc::ENOENT);
        assert_eq!(errno(Error::Checksum { block: 3 }).code(), libc::EIO);
        assert_eq!(name_str(std::os::unix::ffi::OsStrExt::from_bytes(&[0xff][..])), Err(Error::InvalidArgument));
    }
}
