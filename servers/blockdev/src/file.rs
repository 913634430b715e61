//! A device backed by a disk-image file on the host.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::{check_request, BlockDevice, Error, Result, SECTOR_SIZE};

/// An image file; `flush` is `fsync`, so a barrier really reaches the host's disk.
#[derive(Debug)]
pub struct FileDisk {
    file: File,
    sectors: u64,
}

impl FileDisk {
    /// Open an existing image read-write. Its size must be a whole number of sectors.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Self::from_file(file)
    }

    /// Create (or truncate) an image of `bytes` bytes, rounded up to whole sectors.
    pub fn create(path: &Path, bytes: u64) -> std::io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        file.set_len(bytes.div_ceil(SECTOR_SIZE as u64) * SECTOR_SIZE as u64)?;
        Self::from_file(file)
    }

    fn from_file(file: File) -> std::io::Result<Self> {
        let len = file.metadata()?.len();
        if len % SECTOR_SIZE as u64 != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("image size {len} is not a multiple of {SECTOR_SIZE}-byte sectors"),
            ));
        }
        Ok(FileDisk { file, sectors: len / SECTOR_SIZE as u64 })
    }
}

impl BlockDevice for FileDisk {
    fn sector_count(&self) -> u64 {
        self.sectors
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<()> {
        let offset = check_request(self.sectors, sector, buf.len())?;
        self.file.read_exact_at(buf, offset).map_err(|_| Error::Io { offset })
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<()> {
        let offset = check_request(self.sectors, sector, buf.len())?;
        self.file.write_all_at(buf, offset).map_err(|_| Error::Io { offset })
    }

    fn flush(&mut self) -> Result<()> {
        self.file.sync_data().map_err(|_| Error::Io { offset: 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_across_reopen() {
        let dir = std::env::temp_dir().join(format!("blockdev-file-{}", std::process::id()));
        let mut d = FileDisk::create(&dir, 4096).unwrap();
        d.write(3, &[9u8; 512]).unwrap();
        d.flush().unwrap();
        drop(d);
        let mut d = FileDisk::open(&dir).unwrap();
        let mut buf = [0u8; 512];
        d.read(3, &mut buf).unwrap();
        assert_eq!(buf, [9u8; 512]);
        std::fs::remove_file(&dir).unwrap();
    }
}
