//! Helpers for the whole-stack tests.
#![allow(dead_code)]

use protocol::api::vfs::{Client, OpenFlags as O};
use protocol::local::LocalIpc;
use protocol::Result;
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

pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32).map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8).collect()
}
