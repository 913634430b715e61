//! `aiobench-check`: the asynchronous path's properties in QEMU, one `CHECK` line each.
//!
//! Design: cheap (a few hundred requests) but through the real stack: random reads of the
//! benchmark file (cold cache, so the disk is read) with many requests outstanding, each checked
//! against its block's contents; writes and reads in one submission (a read after a write sees it,
//! completions in submission order); a request that fails gets its own error while the others
//! succeed; and the vfs server's counters show that it held and ran the requests in batches. The
//! harness adds the virtio queue depth blockcache0 prints when it stops.

use alloc::vec::Vec;
use libwatos::fmt::check;
use libwatos::fs::{Done, ErrorKind, OpenOptions};

use crate::{block, offsets, queue, run_async, Fs, BLOCK, BLOCKS};

/// Random reads checked here.
const READS: usize = 400;

pub fn run(fs: &Fs, name: &str) {
    let blocks = offsets(0xC4, READS, 0, BLOCKS);
    match run_async(fs, &blocks) {
        Ok((good, max, _)) => {
            check(good == READS, format_args!("{name}: {good} of {READS} asynchronous random 4 KiB reads returned the right bytes"));
            check(max >= 10, format_args!("{name}: up to {max} requests outstanding at once (the synchronous API has 1)"));
        }
        Err(e) => {
            check(false, format_args!("{name}: asynchronous reads failed: {e:?}"));
        }
    }
    if let Err(e) = order_and_errors(fs, name) {
        check(false, format_args!("{name}: writes and errors: {e:?}"));
    }
    match fs.client().aio_stats() {
        Ok(s) => {
            check(s.completed == s.submitted && s.submitted >= READS as u64, format_args!("{name}: the vfs server completed all {} requests submitted", s.submitted));
            check(s.run_max >= 10, format_args!("{name}: the vfs server ran queued requests in batches (largest {}, {} runs)", s.run_max, s.runs));
        }
        Err(e) => {
            check(false, format_args!("{name}: aio_stats: {e:?}"));
        }
    }
}

fn order_and_errors(fs: &Fs, name: &str) -> libwatos::fs::Result<()> {
    let path = "/aio-check.bin";
    let data: Vec<u8> = (0..8).flat_map(block).collect();
    fs.write(path, &data)?;
    let rw = OpenOptions::new().read(true).write(true).open(fs, path)?;
    let wo = OpenOptions::new().write(true).open(fs, path)?;
    let mut q = queue(fs);
    let new = block(1000);
    let before = q.submit_read(&rw, BLOCK as u64, BLOCK);
    let write = q.submit_write(&rw, BLOCK as u64, new.clone());
    let after = q.submit_read(&rw, BLOCK as u64, BLOCK);
    let bad = q.submit_read(&wo, 0, 16);
    let tail = q.submit_read(&rw, 7 * BLOCK as u64 + 4000, 1000);
    let done = q.complete();
    let tickets: Vec<_> = done.iter().map(|c| c.ticket).collect();
    check(tickets == [before, write, after, bad, tail], format_args!("{name}: one completion per ticket, in submission order"));
    let result = |i: usize| done.get(i).map(|c| c.result.clone());
    check(
        result(0) == Some(Ok(Done::Read(block(1)))) && result(1) == Some(Ok(Done::Written(BLOCK))) && result(2) == Some(Ok(Done::Read(new.clone()))),
        format_args!("{name}: a read submitted before a write sees the old bytes, one after it the new"),
    );
    check(
        matches!(result(3), Some(Err(e)) if e.kind() == ErrorKind::BadDescriptor) && result(4) == Some(Ok(Done::Read(block(7)[4000..].to_vec()))),
        format_args!("{name}: a read on a write-only descriptor fails alone; a read past the end is short"),
    );
    let mut want = data;
    want[BLOCK..2 * BLOCK].copy_from_slice(&new);
    check(fs.read(path)? == want, format_args!("{name}: the asynchronous write is in the file"));
    fs.remove_file(path)?;
    Ok(())
}
