//! Helpers for the watos-fs tests: a whole stack and an app's `Fs` on it.
#![allow(dead_code, unused_imports)]

use protocol::local::LocalIpc;
pub use test_support::pattern;
use watos_fs::Fs;
use watos_stack::{Stack, StackConfig};

/// The mounts every API is tested on: WFS at /, FAT at /fat, memfs at /mem.
pub const MOUNTS: [&str; 3] = ["", "/fat", "/mem"];

pub fn stack() -> (Stack, Fs<LocalIpc>) {
    let s = Stack::new(StackConfig::default()).unwrap();
    let fs = Fs::new(s.app("app").unwrap().vfs);
    (s, fs)
}

pub fn names(fs: &Fs<LocalIpc>, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = fs.read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string()).collect();
    v.sort();
    v
}

/// Restart the vfs server while it handles the `nth` call delivered to it from now on (counting
/// from 1): it runs on the old incarnation, whose reply is dropped, as when a server dies
/// mid-request. Returns a guard that removes the hook.
pub fn restart_vfs_during_call(s: &Stack, nth: u32) -> HookGuard {
    use std::cell::Cell;
    use std::rc::Rc;
    let ipc = s.ipc.clone();
    let vfs = s.id("vfs").unwrap().index;
    let count = Rc::new(Cell::new(0u32));
    s.ipc.set_call_hook(Some(Rc::new(move |to: protocol::ipc::TaskId| {
        if to.index != vfs {
            return;
        }
        count.set(count.get() + 1);
        if count.get() == nth {
            ipc.restart(vfs).unwrap();
        }
    })));
    HookGuard(s.ipc.clone())
}

pub struct HookGuard(LocalIpc);

impl Drop for HookGuard {
    fn drop(&mut self) {
        self.0.set_call_hook(None);
    }
}
