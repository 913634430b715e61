//! Adapters from each format's library to [`ImageFs`]: the only place that names WFS and FAT types.
//!
//! Design: one open, one format and one `ImageFs` impl per format, each a few lines over the
//! library's own API, so the rest of the tool never changes when a library does. memfs implements
//! `ImageFs` too (its `close` and `check` are trivially right: there is nothing on disk).

use std::path::Path;

use memfs::MemFs;

use crate::image::{Format, ImageFs, MkfsOptions, Report};
use crate::ops::ToolResult;

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

pub fn open_wfs(path: &Path) -> ToolResult<Box<dyn ImageFs>> {
    Err(format!("{}: WFS support is not in this build yet (the wfs library is being written)", path.display()))
}

pub fn open_fat(path: &Path) -> ToolResult<Box<dyn ImageFs>> {
    Err(format!("{}: FAT support is not in this build yet (the fat library is being written)", path.display()))
}

pub fn format_wfs(path: &Path, _opts: &MkfsOptions) -> ToolResult<Box<dyn ImageFs>> {
    open_wfs(path)
}

pub fn format_fat(path: &Path, _opts: &MkfsOptions) -> ToolResult<Box<dyn ImageFs>> {
    open_fat(path)
}
