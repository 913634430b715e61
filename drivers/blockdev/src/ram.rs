//! A device held in memory: the fastest backend for tests and benchmarks.

use alloc::vec;
use alloc::vec::Vec;

use crate::{check_request, BlockDevice, Result, SECTOR_SIZE};

/// A RAM-backed device; `flush` is a no-op because memory is as durable as it gets here.
#[derive(Debug, Clone)]
pub struct RamDisk {
    data: Vec<u8>,
}

impl RamDisk {
    /// A zero-filled device of `sectors` sectors.
    pub fn new(sectors: u64) -> Self {
        RamDisk { data: vec![0; sectors as usize * SECTOR_SIZE] }
    }

    /// A device holding `bytes`, rounded up to whole sectors with zeros.
    pub fn from_bytes(mut bytes: Vec<u8>) -> Self {
        let rounded = bytes.len().div_ceil(SECTOR_SIZE) * SECTOR_SIZE;
        bytes.resize(rounded, 0);
        RamDisk { data: bytes }
    }

    /// The whole device content.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Mutable access to the content, for corruption tests.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }
}

impl BlockDevice for RamDisk {
    fn sector_count(&self) -> u64 {
        (self.data.len() / SECTOR_SIZE) as u64
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<()> {
        let start = check_request(self.sector_count(), sector, buf.len())? as usize;
        buf.copy_from_slice(&self.data[start..start + buf.len()]);
        Ok(())
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<()> {
        let start = check_request(self.sector_count(), sector, buf.len())? as usize;
        self.data[start..start + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::Error;

    #[test]
    fn reads_back_what_was_written() {
        let mut d = RamDisk::new(8);
        d.write(2, &[7u8; 1024]).unwrap();
        let mut buf = [0u8; 1536];
        d.read(1, &mut buf).unwrap();
        assert!(buf[..512].iter().all(|&b| b == 0));
        assert!(buf[512..].iter().all(|&b| b == 7));
    }

    #[test]
    fn rejects_partial_sectors_and_out_of_range() {
        let mut d = RamDisk::new(4);
        assert_eq!(d.read(0, &mut [0u8; 100]), Err(Error::InvalidArgument));
        assert_eq!(d.write(4, &[0u8; 512]), Err(Error::InvalidArgument));
        assert_eq!(d.write(3, &[0u8; 1024]), Err(Error::InvalidArgument));
        assert_eq!(d.read(u64::MAX, &mut [0u8; 512]), Err(Error::InvalidArgument));
    }
}
