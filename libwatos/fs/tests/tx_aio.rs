//! Transactions and the async submit/complete API through the whole stack.

mod common;

use common::*;
use watos_fs::{Done, Error, ErrorKind, OpenOptions};

#[test]
fn transaction_closure_commits_on_ok_and_aborts_on_error() {
    let (s, fs) = stack();
    for m in ["", "/mem"] {
        let ok = format!("{m}/ok");
        let bad = format!("{m}/bad");
        let r = fs.transaction(if m.is_empty() { "/" } else { m }, |fs| {
            fs.write(&ok, b"kept")?;
            Ok(7)
        });
        assert_eq!(r.unwrap(), 7);
        let r: Result<(), Error> = fs.transaction(if m.is_empty() { "/" } else { m }, |fs| {
            fs.write(&bad, b"dropped")?;
            fs.remove_file(&ok)?;
            fs.open(&format!("{m}/missing")).map(|_| ())
        });
        assert_eq!(r.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(fs.read(&ok).unwrap(), b"kept", "{m}: the aborted remove came back");
        assert!(!fs.exists(&bad).unwrap(), "{m}: the aborted create vanished");
    }
    // Committed WFS data is durable: a power cut now keeps it.
    use protocol::fs::FileSystem;
    let mut d = s.durable_wfs().unwrap();
    let root = d.root();
    assert!(d.lookup(root, "ok").is_ok());
    assert!(d.lookup(root, "bad").is_err());
}

#[test]
fn explicit_transactions_and_their_errors() {
    let (s, fs) = stack();
    let tx = fs.begin("/").unwrap();
    fs.write("/t", b"1").unwrap();
    tx.abort().unwrap();
    assert!(!fs.exists("/t").unwrap());
    {
        let _tx = fs.begin("/").unwrap();
        fs.write("/t", b"2").unwrap();
        // Dropped unfinished: aborted.
    }
    assert!(!fs.exists("/t").unwrap());
    let tx = fs.begin("/").unwrap();
    fs.write("/t", b"3").unwrap();
    tx.commit().unwrap();
    assert_eq!(fs.read("/t").unwrap(), b"3");
    assert_eq!(fs.begin("/fat").err().unwrap().kind(), ErrorKind::Unsupported);
    // A restart of the vfs during a transaction is reported at commit.
    let tx = fs.begin("/").unwrap();
    s.restart("vfs").unwrap();
    assert_eq!(tx.commit().unwrap_err().kind(), ErrorKind::ServerRestarted);
}

/// Found by the stress boot's transaction client: a vfs restart in the middle of a transaction
/// ended it, and the process's next writes, sent to the new vfs, landed outside it, visible at once,
/// while the writes before the restart were dropped. Every call after the restart must fail until
/// the transaction is finished, so all or none of it is visible.
#[test]
fn a_vfs_restart_inside_a_transaction_lets_no_later_write_escape_it() {
    let (s, fs) = stack();
    fs.write("/a", b"old").unwrap();
    fs.write("/b", b"old").unwrap();
    let tx = fs.begin("/").unwrap();
    fs.write("/a", b"new").unwrap();
    s.restart("vfs").unwrap();
    // Reads too: the transaction's own view is gone, and a path lookup must not quietly move on.
    assert_eq!(fs.write("/b", b"new").unwrap_err().kind(), ErrorKind::NoSuchTransaction);
    assert_eq!(fs.exists("/b").unwrap_err().kind(), ErrorKind::NoSuchTransaction);
    assert_eq!(fs.read("/fat/x").unwrap_err().kind(), ErrorKind::NoSuchTransaction);
    assert_eq!(tx.abort().unwrap_err().kind(), ErrorKind::ServerRestarted);
    // Finished: the connection works again, and none of the transaction is visible.
    assert_eq!(fs.read("/a").unwrap(), b"old");
    assert_eq!(fs.read("/b").unwrap(), b"old");
    // The same with the restart noticed by a call the stub retries by itself (a stat), and a
    // transaction dropped rather than finished. (A fresh stack each time: the old vfs's
    // transaction stays open at the WFS server, which holds one at a time, so a new begin there
    // is refused with Busy.)
    let (s, fs) = stack();
    fs.write("/a", b"old").unwrap();
    fs.write("/b", b"old").unwrap();
    {
        let _tx = fs.begin("/").unwrap();
        let _hook = restart_vfs_during_call(&s, 1);
        assert_eq!(fs.metadata("/a").unwrap_err().kind(), ErrorKind::NoSuchTransaction);
        assert_eq!(fs.write("/a", b"new").unwrap_err().kind(), ErrorKind::NoSuchTransaction);
    }
    assert_eq!(fs.read("/a").unwrap(), b"old");
    fs.write("/a", b"after").unwrap();
    assert_eq!(fs.read("/a").unwrap(), b"after");
    // A clone of the connection shares the transaction and its fate.
    let (s, fs) = stack();
    fs.write("/b", b"old").unwrap();
    let other = fs.clone();
    let tx = fs.begin("/").unwrap();
    s.restart("vfs").unwrap();
    assert_eq!(other.write("/b", b"new").unwrap_err().kind(), ErrorKind::NoSuchTransaction);
    drop(tx);
    assert_eq!(other.read("/b").unwrap(), b"old");
}

#[test]
fn queue_batches_many_reads_and_keeps_submission_order() {
    let (_s, fs) = stack();
    let mut files = Vec::new();
    let mut datas = Vec::new();
    for (i, m) in MOUNTS.iter().enumerate() {
        let p = format!("{m}/q");
        let d = pattern(100_000, i as u64);
        fs.write(&p, &d).unwrap();
        files.push(fs.open(&p).unwrap());
        datas.push(d);
    }
    let mut q = fs.queue();
    let mut want = Vec::new();
    for i in 0..200usize {
        let f = i % 3;
        let off = (i * 4099) % 95_000;
        let t = q.submit_read(&files[f], off as u64, 4096);
        want.push((t, datas[f][off..(off + 4096).min(100_000)].to_vec()));
    }
    assert_eq!(q.in_flight(), 200);
    let done = q.complete();
    assert_eq!(q.in_flight(), 0);
    assert_eq!(done.len(), 200);
    for (c, (t, d)) in done.iter().zip(&want) {
        assert_eq!(c.ticket, *t);
        assert_eq!(c.result, Ok(Done::Read(d.clone())));
    }
    // Four submits of 64 requests and reaps of 256 KiB of data each.
    assert!(q.calls() <= 8, "200 reads in {} vfs calls", q.calls());
    // Reads past the end are short; a read after a write in the same submission sees it.
    let mut w = OpenOptions::new().read(true).write(true).open(&fs, "/q").unwrap();
    let t1 = q.submit_read(&w, 99_990, 100);
    let t2 = q.submit_write(&w, 10, b"written".to_vec());
    let t3 = q.submit_read(&w, 10, 7);
    let done = q.complete();
    assert_eq!(done[0].ticket, t1);
    assert_eq!(done[0].result, Ok(Done::Read(datas[0][99_990..].to_vec())));
    assert_eq!((done[1].ticket, done[1].result.clone()), (t2, Ok(Done::Written(7))));
    assert_eq!((done[2].ticket, done[2].result.clone()), (t3, Ok(Done::Read(b"written".to_vec()))));
    // Queue I/O is positioned: the file's own position has not moved.
    let mut head = [0u8; 4];
    w.read(&mut head).unwrap();
    assert_eq!(head, datas[0][..4]);
}

#[test]
fn queue_gives_each_ticket_its_own_error_and_survives_a_restart() {
    let (s, fs) = stack();
    fs.write("/r", b"readable").unwrap();
    let r = fs.open("/r").unwrap();
    let wo = OpenOptions::new().write(true).open(&fs, "/r").unwrap();
    let mut q = fs.queue();
    let a = q.submit_read(&r, 0, 4);
    let b = q.submit_read(&wo, 0, 4);
    let c = q.submit_read(&r, 4, 4);
    let done = q.complete();
    assert_eq!(done.len(), 3);
    assert_eq!((done[0].ticket, done[0].result.clone()), (a, Ok(Done::Read(b"read".to_vec()))));
    assert_eq!(done[1].ticket, b);
    assert_eq!(done[1].result.as_ref().unwrap_err().kind(), ErrorKind::BadDescriptor);
    assert_eq!((done[2].ticket, done[2].result.clone()), (c, Ok(Done::Read(b"able".to_vec()))));
    // Pending reads survive a vfs restart: the batch is idempotent.
    q.submit_read(&r, 0, 8);
    s.restart("vfs").unwrap();
    assert_eq!(q.complete()[0].result, Ok(Done::Read(b"readable".to_vec())));
    // A write queued before a restart that nothing has noticed yet re-opens and goes through: no
    // write was sent to the old server.
    s.restart("vfs").unwrap();
    q.submit_write(&wo, 0, b"R".to_vec());
    assert_eq!(q.complete()[0].result, Ok(Done::Written(1)));
    assert_eq!(fs.read("/r").unwrap(), b"Readable");
    // A write whose reap met the restart is reported: it ran at the old server (call 1 is the
    // submit, call 2 the reap, which runs the queue of a process without a notification).
    wo.metadata().unwrap();
    q.submit_write(&wo, 0, b"r".to_vec());
    let hook = restart_vfs_during_call(&s, 2);
    assert_eq!(q.complete()[0].result.as_ref().unwrap_err().kind(), ErrorKind::ServerRestarted);
    drop(hook);
    // A restart during the submit is not: a submit only queues, so it is sent again and goes through.
    q.submit_write(&wo, 1, b"E".to_vec());
    let _hook = restart_vfs_during_call(&s, 1);
    assert_eq!(q.complete()[0].result, Ok(Done::Written(1)));
    assert_eq!(fs.read("/r").unwrap(), b"rEadable", "the reported write had landed");
}

#[test]
fn queues_keep_their_own_results_and_a_dropped_queue_is_closed() {
    let (_s, fs) = stack();
    fs.write("/two", b"0123456789").unwrap();
    let f = fs.open("/two").unwrap();
    let (mut a, mut b) = (fs.queue(), fs.queue());
    let ta = a.submit_read(&f, 0, 3);
    let tb = b.submit_read(&f, 5, 3);
    // Both at the server before either reaps: neither may take the other's result.
    a.flush();
    b.flush();
    assert_eq!((a.at_server(), b.at_server()), (1, 1));
    let (da, db) = (b.complete(), a.complete());
    assert_eq!((da[0].ticket, da[0].result.clone()), (tb, Ok(Done::Read(b"567".to_vec()))));
    assert_eq!((db[0].ticket, db[0].result.clone()), (ta, Ok(Done::Read(b"012".to_vec()))));
    // Queue 3, dropped with a request at the server, is closed there (closing it again: NotFound).
    let mut c = fs.queue();
    c.submit_read(&f, 0, 1);
    c.flush();
    assert_eq!(c.at_server(), 1);
    drop(c);
    assert_eq!(fs.client().aio_close(3), Err(protocol::Error::NotFound));
    let s = fs.client().aio_stats().unwrap();
    assert_eq!((s.submitted, s.completed), (3, 2), "the closed queue's request never ran");
}

/// The notification path over the whole stack: with a bit registered, nothing runs until the vfs
/// server has idle time (here: the waiter gives it some, as the kernel would while the app
/// sleeps); it then runs the queue in batches and posts exactly our bit.
#[test]
fn notified_queue_waits_for_the_server_to_run_its_batches() {
    use std::cell::Cell;
    use std::rc::Rc;
    let (s, fs) = stack();
    let data = pattern(300_000, 9);
    fs.write("/n", &data).unwrap();
    let f = OpenOptions::new().read(true).write(true).open(&fs, "/n").unwrap();
    let me = fs.client().channel.transport().caller();
    let s = Rc::new(s);
    let (stack2, wakes) = (s.clone(), Rc::new(Cell::new(0)));
    let wakes2 = wakes.clone();
    let mut q = fs.queue().with_notification(1 << 6, move |bits| {
        let posted = stack2.vfs_idle();
        assert_eq!(posted, vec![(me, bits)], "the server ran our requests and posted our bit");
        wakes2.set(wakes2.get() + 1);
    });
    let mut want = Vec::new();
    for i in 0..150usize {
        let off = (i * 7919) % 290_000;
        want.push((q.submit_read(&f, off as u64, 4096), data[off..off + 4096].to_vec()));
    }
    let w = q.submit_write(&f, 0, b"head".to_vec());
    let after = q.submit_read(&f, 0, 4);
    assert!(q.poll().is_empty(), "submitted, not yet run");
    let done = q.complete();
    assert_eq!(done.len(), 152);
    for (c, (t, d)) in done.iter().zip(&want) {
        assert_eq!((c.ticket, &c.result), (*t, &Ok(Done::Read(d.clone()))));
    }
    assert_eq!((done[150].ticket, done[150].result.clone()), (w, Ok(Done::Written(4))));
    assert_eq!((done[151].ticket, done[151].result.clone()), (after, Ok(Done::Read(b"head".to_vec()))));
    assert!(wakes.get() >= 1);
    let st = fs.client().aio_stats().unwrap();
    assert!(st.run_max >= 64 && st.runs <= 4, "{st:?}");
    assert_eq!(q.stats().outstanding_max, 152);
    assert!(s.vfs_idle().is_empty(), "nothing left to run");
}
