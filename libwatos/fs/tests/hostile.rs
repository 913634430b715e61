//! A lying vfs server: replies that claim more bytes than were lent, or the wrong number of batch
//! counts, become `InvalidData` errors, never a panic or a slice out of bounds.

use protocol::api::vfs::{AioDone, Request};
use protocol::ipc::{Lease, TaskId, Transport};
use protocol::{Error, Result};
use serde::Serialize;
use watos_fs::{ErrorKind, Fs, OpenOptions};

struct Liar;

fn reply<R: Serialize>(out: &mut [u8], r: Result<R>) -> Result<usize> {
    out[0] = 0;
    Ok(1 + postcard::to_slice(&r, &mut out[1..]).map_err(|_| Error::TooBig)?.len())
}

impl Transport for Liar {
    fn call(&self, _: TaskId, msg: &[u8], leases: &mut [Lease<'_>], out: &mut [u8]) -> Result<usize> {
        let lent = leases.first().map_or(0, |l| l.len()) as u32;
        match Request::decode(msg)? {
            Request::Open { .. } => reply(out, Ok(3u32)),
            Request::Close { .. } => reply(out, Ok(())),
            Request::Seek { .. } => reply(out, Ok(0u64)),
            Request::Read { .. } => reply(out, Ok(lent + 100)),
            Request::Write { .. } => reply(out, Ok(u32::MAX)),
            Request::BatchRead { reads } => reply(out, Ok(vec![1u32; reads.len() + 1])),
            Request::AioSubmit { .. } => reply(out, Ok(10u64)),
            // Ticket 10 claims more bytes than it asked for, 11 more than were lent, 12 a write of
            // more than was sent; 13 was never submitted, so the rest must fail too.
            Request::AioReap { .. } => {
                let done = |ticket, n| AioDone { ticket, result: Ok(n) };
                reply(out, Ok(vec![done(10, 9), done(11, lent + 1), done(12, 4), done(13, 0)]))
            }
            _ => reply::<()>(out, Err(Error::NotSupported)),
        }
    }
    fn refresh(&self, to: TaskId) -> Result<TaskId> {
        Ok(to)
    }
}

#[test]
fn lying_counts_are_errors() {
    let fs = Fs::connect(Liar, TaskId::new(1, 1));
    let mut f = OpenOptions::new().read(true).write(true).open(&fs, "/f").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(f.read(&mut buf).unwrap_err().kind(), ErrorKind::InvalidData);
    assert_eq!(f.write(b"abc").unwrap_err().server_error(), Some(Error::Malformed));
    let mut all = Vec::new();
    assert_eq!(f.read_to_end(&mut all).unwrap_err().kind(), ErrorKind::InvalidData);
    assert!(all.is_empty());
    let mut q = fs.queue();
    q.submit_read(&f, 0, 8);
    q.submit_read(&f, 8, 8);
    q.submit_write(&f, 0, b"xyz".to_vec());
    q.submit_read(&f, 0, 8);
    let done = q.complete();
    assert_eq!(done.len(), 4, "every ticket completes");
    assert!(done.iter().all(|c| c.result.as_ref().unwrap_err().kind() == ErrorKind::InvalidData), "{done:?}");
}
