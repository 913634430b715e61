//! FAT12/16/32 with long file names and full write support: the library core of fat-server.
//!
//! Design: [`FatFs`] is generic over a [`blockdev::BlockDevice`] and implements
//! [`protocol::fs::FileSystem`], so the same code is tested on the host (RAM disks, image files
//! shared with `mkfs.fat`, `fsck.fat` and mtools) and runs in the bare-metal server. The modules:
//!
//! - [`bpb`]: boot-sector parsing into byte-offset [`Geometry`];
//! - `table`: the whole FAT cached in memory, written back to every copy at commit points;
//! - `runs`: per-node cluster-run maps so a seek is a binary search, not a chain walk;
//! - `name` / `dirent`: 8.3 names with case flags, `~N` aliases, VFAT slots and checksums;
//! - `volume`: mount, the node table, directory caches and the commit order;
//! - `entries`: adding, finding (through a case-folded name index) and removing names;
//! - `file` / `ops`: file data and the [`FileSystem`](protocol::fs::FileSystem) operations;
//! - `format` / `check`: the formatter and a structural checker (cross-links, lost clusters).
//!
//! # Node ids
//! FAT has no inode numbers. A node's id is derived from where its short directory entry lives
//! (device byte offset / 32); the root is [`ROOT`]. Ids stay valid for the life of the node in this
//! server, including across renames (an in-memory table maps ids to entry locations).
//!
//! ## What a server restart preserves
//! A fresh mount resolves an id it has never seen by its location (`locate`): cached directories
//! first, then directories loaded breadth-first from the root until one holds the entry, so a
//! client (the vfs re-opening its files) can keep using the ids of a previous run. This holds for
//! every node whose entry is where it was when the id was handed out, which is every node not
//! renamed since then. A node renamed in the old run kept its id there, but after the restart it
//! is found only under the id of its new location; its old id names a deleted slot (`NotFound`,
//! so the client must look the path up again) or, if a later create reused that slot, the newer
//! entry, just as an inode number can be reused on other filesystems. Ids the old run handed out
//! for renamed-over locations (spare ids, above 2^62) never survive. Ids of entries that were deleted, of long-name slots, of free or bad clusters, of
//! clusters no directory reaches, and past the volume end are `NotFound`. Unlinked-but-open files
//! do not survive: their clusters are lost clusters for `fsck.fat`.
//!
//! # Crash safety (write order)
//! FAT cannot update atomically, so the order of writes is chosen so a power cut leaves at worst
//! lost clusters (allocated but unreferenced, or a chain longer than its file, which `fsck.fat`
//! truncates) and never a cluster owned twice or a chain running into a free cluster:
//! 1. the first change after mount clears the clean-shutdown bit in entry 1 of the FAT (FAT16/32);
//! 2. file data goes to clusters that the on-disk FAT still shows as free;
//! 3. before any directory entry is written, the dirty FAT sectors are written to every copy,
//!    with a flush barrier on each side, so an entry never points at an unallocated chain; inside
//!    that write-back, new chain bodies and chain cuts go first and links from existing chains
//!    and frees go second, after another barrier (see `table`);
//! 4. directory entries (size, first cluster) are written last; entries that free clusters
//!    (unlink, rmdir, truncate, rename over a target) are written *before* the FAT frees them;
//!    a rename removes the old entry, then rewrites a moved directory's `..`, then writes the
//!    new entry (a cut in between loses the name, which `fsck.fat` recovers as lost clusters);
//! 5. `sync`/`unmount` write FSInfo with the exact free count; `unmount` sets the clean bit again
//!    (unless the volume was already dirty when mounted: then only `fsck.fat` should clear it).
//!
//! File sizes and timestamps changed by `write` live in memory until the next commit (`sync`,
//! `fsync`, `unmount`, or any operation that writes a directory entry). Unlinked files that are
//! still open keep their clusters until `release`; a crash before that leaves them as lost
//! clusters. `tests/crash.rs` cuts the power at every write of a workload and checks each state.
//!
//! # Limits
//! The whole FAT is kept in memory (4 bytes per cluster on FAT32); directories are cached whole
//! once read. Mount reads the FAT once and counts free clusters itself rather than trusting FSInfo.
#![cfg_attr(not(test), no_std)]
#![allow(clippy::manual_is_multiple_of)] // `is_multiple_of` is newer than the workspace MSRV (1.85)
#![forbid(unsafe_code)]

extern crate alloc;

pub mod bpb;
mod check;
mod dirent;
mod entries;
mod file;
mod format;
mod locate;
mod name;
mod ops;
mod runs;
mod table;
mod volume;

pub use bpb::{FatType, Geometry};
pub use check::CheckReport;
pub use format::FormatOptions;
pub use volume::{FatFs, ROOT};
