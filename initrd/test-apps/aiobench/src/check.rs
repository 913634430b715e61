//! `aiobench-check`: the asynchronous path's properties in QEMU, one `CHECK` line each.
//!
//! Design: cheap (a few hundred requests) but through the real stack: random reads of the
//! benchmark file (cold cache, so the disk is read) with many requests outstanding, each checked
//! against its block's contents; writes and reads in one submission (a read after a write sees it,
//! completions in submission order); a request that fails gets its own error while the others
//! succeed; the vfs server's counters show that it held and ran the requests in batches; and when
//! init kills the vfs server with requests outstanding, every ticket still completes (right bytes
//! or a clear error) and a new queue works on the restarted server. The harness adds the virtio
//! queue depth blockcache0 prints when it stops.

use alloc::vec::Vec;
use libwatos::fmt::check;
use libwatos::fs::{Done, ErrorKind, OpenOptions};
use libwatos::service;

use crate::{block, offsets, queue, run_async, Fs, BLOCK, BLOCKS, FILE};

/// Random reads checked here.
const READS: usize = 400;

pub fn run(fs: &Fs, name: &str) {
    let blocks = offsets(0xC4, READS, 0, BLOCKS);
    match run_async(fs, &blocks) {
        Ok((good, max, _)) => {
            check(
                good == READS,
                format_args!("{name}: {good} of {READS} asynchronous random 4 KiB reads returned the right bytes"),
            );
            check(
                max >= 10,
                format_args!("{name}: up to {max} requests outstanding at once (the synchronous API has 1)"),
            );
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
            check(
                s.completed == s.submitted && s.submitted >= READS as u64,
                format_args!("{name}: the vfs server completed all {} requests submitted", s.submitted),
            );
            check(
                s.run_max >= 10,
                format_args!(
                    "{name}: the vfs server ran queued requests in batches (largest {}, {} runs)",
                    s.run_max, s.runs
                ),
            );
        }
        Err(e) => {
            check(false, format_args!("{name}: aio_stats: {e:?}"));
        }
    }
    if let Err(e) = vfs_killed(fs, name) {
        check(false, format_args!("{name}: vfs kill: {e:?}"));
    }
}

/// Init kills the vfs server while requests are outstanding: every ticket still completes, with
/// the right bytes (resubmitted to the restarted server) or a clear error; then a new queue works.
fn vfs_killed(fs: &Fs, name: &str) -> libwatos::fs::Result<()> {
    let f = fs.open(FILE)?;
    let blocks = offsets(0xD1, 200, 0, BLOCKS);
    let mut q = queue(fs);
    let tickets: Vec<_> = blocks.iter().map(|&b| q.submit_read(&f, b * BLOCK as u64, BLOCK)).collect();
    q.flush();
    let killed = service::supervisor().and_then(|s| s.kill_task("vfs-server"));
    check(
        killed.is_ok(),
        format_args!("{name}: init killed vfs-server with {} requests at it ({killed:?})", q.at_server()),
    );
    let done = q.complete();
    let right = done.iter().zip(&blocks).filter(|(c, &b)| c.result == Ok(Done::Read(block(b)))).count();
    let clear = done
        .iter()
        .filter(
            |c| matches!(&c.result, Err(e) if matches!(e.kind(), ErrorKind::ServerDead | ErrorKind::ServerRestarted)),
        )
        .count();
    let order = done.iter().map(|c| c.ticket).eq(tickets.iter().copied());
    check(order && right + clear == blocks.len(), format_args!("{name}: after the vfs kill every ticket completed: {right} with the right bytes, {clear} with a clear error"));
    // init restarts it after its backoff; until then calls fail with ServerDead.
    for _ in 0..500 {
        if fs.metadata(FILE).is_ok() {
            break;
        }
        libwatos::sys::sleep_ns(10_000_000);
    }
    let f = fs.open(FILE)?;
    let mut q = queue(fs);
    let again: Vec<_> = blocks[..16].iter().map(|&b| (q.submit_read(&f, b * BLOCK as u64, BLOCK), b)).collect();
    let done = q.complete();
    let ok = done.len() == again.len()
        && done.iter().zip(&again).all(|(c, (t, b))| c.ticket == *t && c.result == Ok(Done::Read(block(*b))));
    check(ok, format_args!("{name}: a new queue on the restarted vfs server reads the right bytes"));
    Ok(())
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
    check(
        tickets == [before, write, after, bad, tail],
        format_args!("{name}: one completion per ticket, in submission order"),
    );
    let result = |i: usize| done.get(i).map(|c| c.result.clone());
    check(
        result(0) == Some(Ok(Done::Read(block(1))))
            && result(1) == Some(Ok(Done::Written(BLOCK)))
            && result(2) == Some(Ok(Done::Read(new.clone()))),
        format_args!("{name}: a read submitted before a write sees the old bytes, one after it the new"),
    );
    check(
        matches!(result(3), Some(Err(e)) if e.kind() == ErrorKind::BadDescriptor)
            && result(4) == Some(Ok(Done::Read(block(7)[4000..].to_vec()))),
        format_args!("{name}: a read on a write-only descriptor fails alone; a read past the end is short"),
    );
    let mut want = data;
    want[BLOCK..2 * BLOCK].copy_from_slice(&new);
    check(fs.read(path)? == want, format_args!("{name}: the asynchronous write is in the file"));
    fs.remove_file(path)?;
    Ok(())
}
