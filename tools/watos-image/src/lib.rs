//! watos-image: the host tool for WATOS disk images, as a library so its logic is unit-tested.
//!
//! Design: every command works on a `protocol::fs::FileSystem` (WFS, FAT, or memfs in tests), never on
//! a format's internals, so the tool exercises exactly the code the WATOS servers run. [`image`]
//! detects an image's format and opens it behind the [`image::ImageFs`] trait object; [`paths`] turns
//! paths into inode-level calls; [`fuse`] serves any `ImageFs` to the Linux kernel through FUSE;
//! [`cli`] parses the command line and turns failures into one clear line and a non-zero exit.

pub mod cli;
pub mod formats;
pub mod fuse;
pub mod image;
pub mod paths;

use protocol::fs::{Clock, Timespec};

/// The host's wall clock, for timestamps of files the tool creates.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timespec {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timespec::new(d.as_secs() as i64, d.subsec_nanos())
    }
}
