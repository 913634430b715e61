//! Helpers for the whole-stack tests.
#![allow(dead_code, unused_imports)]

use protocol::api::vfs::{Client, OpenFlags as O};
use protocol::local::LocalIpc;
use protocol::Result;
pub use test_support::pattern;
use watos_stack::{App, Stack, StackConfig};

pub fn stack() -> (Stack, App) {
    let s = Stack::new(StackConfig::default()).unwrap();
    let app = s.app("app").unwrap();
    (s, app)
}

pub fn put(c: &Client<LocalIpc>, path: &str, data: &[u8]) -> Result<()> {
    let fd = c.open(path, O::WRITE | O::CREATE | O::TRUNCATE, 0o644)?;
    let mut done = 0;
    while done < data.len() {
        done += c.write(fd, &data[done..])? as usize;
    }
    c.close(fd)
}

pub fn get(c: &Client<LocalIpc>, path: &str) -> Result<Vec<u8>> {
    let fd = c.open(path, O::READ, 0)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = c.read(fd, &mut buf)? as usize;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    c.close(fd)?;
    Ok(out)
}

pub fn list(c: &Client<LocalIpc>, path: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut cookie = 0;
    loop {
        let page = c.readdir(path, cookie)?;
        let Some(last) = page.last() else { break };
        cookie = last.next_cookie;
        names.extend(page.into_iter().map(|e| e.name));
    }
    Ok(names)
}
