//! [`SharedDisk`]: the harness's disk, a RAM disk that outlives the cache servers built on it.

use alloc::rc::Rc;
use core::cell::RefCell;

use blockdev::{BlockDevice, RamDisk};
use protocol::Result;

/// A RAM disk shared between the harness and successive incarnations of a cache server: the "hardware"
/// that survives a server restart. An optional hook runs once per device request (a vectored request
/// is one), so a benchmark can give the device a per-request cost like a real disk's round trip.
#[derive(Clone)]
pub struct SharedDisk {
    pub disk: Rc<RefCell<RamDisk>>,
    hook: Rc<RefCell<Option<RequestHook>>>,
}

/// Called once per device request.
pub type RequestHook = Rc<dyn Fn()>;

impl SharedDisk {
    pub fn new(sectors: u64) -> Self {
        SharedDisk { disk: Rc::new(RefCell::new(RamDisk::new(sectors))), hook: Rc::new(RefCell::new(None)) }
    }

    /// A copy of the disk's bytes (e.g. to mount it directly and check what is durable).
    pub fn snapshot(&self) -> RamDisk {
        self.disk.borrow().clone()
    }

    /// Run `hook` on every device request from now on (`None`: no cost).
    pub fn set_request_hook(&self, hook: Option<RequestHook>) {
        *self.hook.borrow_mut() = hook;
    }

    fn request(&self) {
        if let Some(h) = self.hook.borrow().as_ref() {
            h();
        }
    }
}

impl BlockDevice for SharedDisk {
    fn sector_count(&self) -> u64 {
        self.disk.borrow().sector_count()
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<()> {
        self.request();
        self.disk.borrow_mut().read(sector, buf)
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<()> {
        self.request();
        self.disk.borrow_mut().write(sector, buf)
    }
    fn flush(&mut self) -> Result<()> {
        self.request();
        self.disk.borrow_mut().flush()
    }
    fn read_vectored(&mut self, runs: &mut [(u64, &mut [u8])]) -> Result<()> {
        self.request();
        let mut d = self.disk.borrow_mut();
        runs.iter_mut().try_for_each(|(sector, buf)| d.read(*sector, buf))
    }
    fn write_vectored(&mut self, runs: &[(u64, &[u8])]) -> Result<()> {
        self.request();
        let mut d = self.disk.borrow_mut();
        runs.iter().try_for_each(|(sector, buf)| d.write(*sector, buf))
    }
}
