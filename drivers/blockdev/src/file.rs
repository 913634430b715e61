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

    #[test]
    fn rejects_images_of_partial_sectors_and_bad_requests() {
        let path = std::env::temp_dir().join(format!("blockdev-file-odd-{}", std::process::id()));
        std::fs::write(&path, [0u8; 700]).unwrap();
        let err = FileDisk::open(&path).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        // `create` rounds up to whole sectors instead.
        let mut d = FileDisk::create(&path, 700).unwrap();
        assert_eq!(d.sector_count(), 2);
        assert_eq!(d.read(2, &mut [0u8; 512]), Err(Error::InvalidArgument));
        assert_eq!(d.write(0, &[0u8; 100]), Err(Error::InvalidArgument));
        // Vectored requests use the trait's defaults and reach the file too.
        let (a, b) = ([1u8; 512], [2u8; 512]);
        d.write_vectored(&[(1, &a), (0, &b)]).unwrap();
        let (mut x, mut y) = ([0u8; 512], [0u8; 512]);
        d.read_vectored(&mut [(0, &mut x), (1, &mut y)]).unwrap();
        assert_eq!((x, y), (b, a));
        std::fs::remove_file(&path).unwrap();
        assert!(FileDisk::open(&path).is_err());
    }
}
