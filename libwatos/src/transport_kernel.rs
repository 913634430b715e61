//! The transport's kernel: `Endpoint` and `Syscalls` answered by the real system calls, one call
//! each, with nothing decided here (the decisions are in transport.rs, where host tests reach them).

use super::{Endpoint, KernelLeases, SysResult, Syscalls};
use crate::{ipc, sys};
use watos_abi::{Lease, RecvInfo};

/// The real kernel: its system calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kernel;

impl Syscalls for Kernel {
    fn find_task(&self, name: &core::ffi::CStr) -> SysResult<u64> {
        sys::find_task(name)
    }
    fn send_code(&self, target: u64, msg: &[u8], reply: &mut [u8], leases: &[Lease]) -> SysResult<(usize, u32)> {
        ipc::send_code(target, msg, reply, leases)
    }
    fn lease_info(&self, client: u64, index: usize) -> SysResult<Lease> {
        ipc::lease_info(client, index)
    }
    fn borrow_read(&self, client: u64, index: usize, offset: usize, buf: &mut [u8]) -> SysResult<usize> {
        ipc::borrow_read(client, index, offset, buf)
    }
    fn borrow_write(&self, client: u64, index: usize, offset: usize, data: &[u8]) -> SysResult<usize> {
        ipc::borrow_write(client, index, offset, data)
    }
    fn map_window(&self, len: usize) -> Option<usize> {
        sys::map_anon(len, 0).ok().map(|p| p as usize)
    }
}

impl Endpoint for Kernel {
    type Leases = KernelLeases;
    fn receive(&mut self, buf: &mut [u8], mask: u64) -> SysResult<RecvInfo> {
        ipc::receive(buf, mask)
    }
    fn try_receive(&mut self, buf: &mut [u8], mask: u64) -> SysResult<Option<RecvInfo>> {
        ipc::try_receive(buf, mask)
    }
    fn leases(&mut self, info: &RecvInfo) -> KernelLeases {
        KernelLeases { kernel: Kernel, client: info.sender, count: info.leases as usize }
    }
    fn reply(&mut self, client: u64, msg: &[u8], code: u32) -> SysResult<()> {
        ipc::reply_code(client, msg, code)
    }
    fn notify(&mut self, task: u64, bits: u64) -> SysResult<()> {
        ipc::notify(task, bits)
    }
}
