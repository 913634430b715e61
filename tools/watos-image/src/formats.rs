//! Adapters from each format's library to [`ImageFs`]: the only place that names WFS and FAT types.
//!
//! Design: one open, one format and one `ImageFs` impl per format, each a few lines over the
//! library's own API, so the rest of the tool never changes when a library does. memfs implements
//! `ImageFs` too (its `close` and `check` are trivially right: there is nothing on disk).

use std::path::Path;

use blockdev::{BlockDevice, FileDisk};
use fat::{FatFs, FatType};
use memfs::MemFs;
use wfs::Wfs;

use crate::image::{Format, ImageFs, MkfsOptions, Report, SnapshotCmd};
use crate::paths::ToolResult;
use crate::SystemClock;

impl ImageFs for MemFs {
    fn format(&self) -> Format {
        Format::Mem
    }

    fn close(self: Box<Self>) -> ToolResult<()> {
        Ok(())
    }

    fn check(&mut self, _repair: bool) -> ToolResult<Report> {
        Ok(Report { clean: true, text: "memfs: nothing on disk to check".into() })
    }
}

/// Open the image file read-write as a block device.
fn disk(path: &Path) -> ToolResult<FileDisk> {
    FileDisk::open(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A library error while opening or formatting, with the image named.
fn failed(path: &Path, what: &str, e: protocol::Error) -> String {
    format!("{}: {what}: {e}", path.display())
}

pub fn open_fat(path: &Path) -> ToolResult<Box<dyn ImageFs>> {
    let fs = FatFs::mount(disk(path)?, Box::new(SystemClock)).map_err(|e| failed(path, "not a valid FAT image", e))?;
    Ok(Box::new(fs))
}

pub fn format_fat(path: &Path, opts: &MkfsOptions) -> ToolResult<Box<dyn ImageFs>> {
    let fat_type = opts.fat_type.map(|t| match t {
        12 => FatType::Fat12,
        16 => FatType::Fat16,
        _ => FatType::Fat32,
    });
    let dev = FileDisk::create(path, opts.bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let fopts = fat::FormatOptions { fat_type, ..Default::default() };
    let fs = FatFs::format(dev, &fopts, Box::new(SystemClock)).map_err(|e| {
        let _ = std::fs::remove_file(path);
        failed(path, "cannot format FAT (for example, too small or too large for the FAT type)", e)
    })?;
    Ok(Box::new(fs))
}

impl ImageFs for FatFs<FileDisk> {
    fn format(&self) -> Format {
        Format::Fat
    }

    fn close(self: Box<Self>) -> ToolResult<()> {
        let mut dev = self.unmount().map_err(|e| format!("FAT unmount: {e}"))?;
        dev.flush().map_err(|e| format!("flushing the image: {e}"))
    }

    fn check(&mut self, repair: bool) -> ToolResult<Report> {
        if repair {
            return Err("FAT repair is not implemented; run `fsck.fat -a IMAGE` (dosfstools)".into());
        }
        let r = FatFs::check(self).map_err(|e| format!("FAT check stopped: {e}"))?;
        Ok(Report { clean: r.is_clean(), text: r.to_string() })
    }
}

pub fn open_wfs(path: &Path) -> ToolResult<Box<dyn ImageFs>> {
    let fs = Wfs::mount(disk(path)?, Box::new(SystemClock)).map_err(|e| failed(path, "cannot mount WFS", e))?;
    Ok(Box::new(fs))
}

pub fn format_wfs(path: &Path, opts: &MkfsOptions) -> ToolResult<Box<dyn ImageFs>> {
    let dev = FileDisk::create(path, opts.bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let fopts = wfs::FormatOptions { checksum: opts.checksum.unwrap_or_default(), ..Default::default() };
    let fs = Wfs::format(dev, &fopts, Box::new(SystemClock)).map_err(|e| {
        let _ = std::fs::remove_file(path);
        failed(path, "cannot format WFS", e)
    })?;
    Ok(Box::new(fs))
}

impl ImageFs for Wfs<FileDisk> {
    fn format(&self) -> Format {
        Format::Wfs
    }

    fn close(self: Box<Self>) -> ToolResult<()> {
        self.unmount().map(|_| ()).map_err(|e| format!("WFS unmount (final commit): {e}"))
    }

    fn check(&mut self, repair: bool) -> ToolResult<Report> {
        let r = self.fsck(repair).map_err(|e| format!("WFS fsck stopped: {e}"))?;
        if !repair || r.is_clean() {
            return Ok(Report { clean: r.is_clean(), text: r.to_string() });
        }
        // Judge the repair by checking again: only what is still wrong counts.
        let after = self.fsck(false).map_err(|e| format!("WFS fsck after repair stopped: {e}"))?;
        Ok(Report { clean: after.is_clean(), text: format!("{r}\nafter repair:\n{after}") })
    }

    fn scrub(&mut self) -> ToolResult<Report> {
        let r = Wfs::scrub(self).map_err(|e| format!("WFS scrub stopped: {e}"))?;
        Ok(Report { clean: r.is_clean(), text: r.to_string() })
    }

    fn snapshot(&mut self, cmd: &SnapshotCmd) -> ToolResult<String> {
        match cmd {
            SnapshotCmd::Create(name) => {
                self.create_snapshot(name).map_err(|e| format!("snapshot {name}: {e}"))?;
                Ok(String::new())
            }
            SnapshotCmd::Delete(name) => {
                self.delete_snapshot(name).map_err(|e| match e {
                    protocol::Error::NotFound => format!("snapshot {name}: no such snapshot"),
                    e => format!("snapshot {name}: {e}"),
                })?;
                Ok(String::new())
            }
            SnapshotCmd::List => {
                let list = self.list_snapshots().map_err(|e| format!("listing snapshots: {e}"))?;
                Ok(list
                    .iter()
                    .map(|s| format!("{}\ttxid {}\tcreated {}", s.name, s.txid, s.created.secs))
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
        }
    }
}
