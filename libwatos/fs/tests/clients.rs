//! Several clients on both mounts while storage servers die and come back: every client recovers
//! (its operations succeed again once the server is back), and fsynced data reads back exactly.

mod common;

use common::*;
use protocol::local::LocalIpc;
use watos_fs::{ErrorKind, File, Fs, OpenOptions, SeekFrom};
use watos_stack::Stack;

/// One client process: a file it keeps open and rewrites, and what it last made durable.
struct Client {
    fs: Fs<LocalIpc>,
    path: String,
    file: File<LocalIpc>,
    synced: Option<Vec<u8>>,
}

impl Client {
    fn new(s: &Stack, n: usize, mount: &str) -> Client {
        let fs = Fs::new(s.app(&format!("client{n}")).unwrap().vfs);
        let path = format!("{mount}/c{n}");
        let file = OpenOptions::new().read(true).write(true).create(true).open(&fs, &path).unwrap();
        Client { fs, path, file, synced: None }
    }

    /// Rewrite the file with round `round`'s contents and fsync it; Ok only if every step was.
    fn rewrite(&mut self, round: u64) -> watos_fs::Result<()> {
        let data = pattern(3000 + round as usize * 7, round);
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&data)?;
        self.file.set_len(data.len() as u64)?;
        self.file.sync_all()?;
        self.synced = Some(data);
        Ok(())
    }

    /// Read the file back by path; reads retry, so this must succeed whenever the servers are up.
    fn check(&self) {
        if let Some(want) = &self.synced {
            let got = self.fs.read(&self.path).unwrap_or_else(|e| panic!("{}: read back: {e:?}", self.path));
            assert_eq!(&got, want, "{}: fsynced bytes differ", self.path);
        }
    }
}

/// Errors a client may see while a server is down or restarting under its call.
fn transient(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::ServerDead | ErrorKind::ServerRestarted)
}

#[test]
fn clients_on_both_mounts_recover_after_each_server_dies_and_returns() {
    let s = Stack::new(watos_stack::StackConfig::default()).unwrap();
    let mut clients: Vec<Client> = (0..4).map(|n| Client::new(&s, n, if n % 2 == 0 { "" } else { "/fat" })).collect();
    let mut round = 0u64;
    for c in clients.iter_mut() {
        round += 1;
        c.rewrite(round).unwrap();
    }
    for victim in ["fat", "fat-cache", "vfs", "wfs", "wfs-cache", "fat", "vfs", "fat-cache"] {
        let index = s.id(victim).unwrap().index;
        // The server is gone for a while: every client keeps trying and gets clear errors.
        s.ipc.kill(index).unwrap();
        for c in clients.iter_mut() {
            round += 1;
            if let Err(e) = c.rewrite(round) {
                assert!(transient(e.kind()) || e.kind() == ErrorKind::Io, "{victim} down, {}: {e:?}", c.path);
            }
        }
        s.ipc.restart(index).unwrap();
        // Back: after at most one report of the restart, every client's rewrite succeeds, and what
        // it fsynced reads back.
        for c in clients.iter_mut() {
            let mut ok = false;
            for _ in 0..3 {
                round += 1;
                match c.rewrite(round) {
                    Ok(()) => {
                        ok = true;
                        break;
                    }
                    Err(e) => assert!(transient(e.kind()), "{victim} back, {}: {e:?}", c.path),
                }
            }
            assert!(ok, "{} never recovered after {victim} came back", c.path);
            c.check();
        }
    }
}

#[test]
fn fsync_after_a_filesystem_restart_never_claims_writes_the_old_server_took() {
    let s = Stack::new(watos_stack::StackConfig::default()).unwrap();
    for (server, mount) in [("fat", "/fat"), ("wfs", "")] {
        let mut a = Client::new(&s, 10, mount);
        let b = Client::new(&s, 11, mount);
        for other_client_first in [false, true] {
            a.rewrite(1).unwrap();
            a.file.seek(SeekFrom::Start(0)).unwrap();
            a.file.write_all(b"written, not synced").unwrap();
            s.restart(server).unwrap();
            if other_client_first {
                // Another client's call is the one that meets the new server: the vfs re-opens
                // every file there before `a` asks for its fsync.
                b.fs.metadata(&b.path).unwrap();
            }
            let e = a.file.sync_all().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ServerRestarted, "{server}, other client first: {other_client_first}");
            // Reported once; the file works again and later writes are durable.
            a.rewrite(2).unwrap();
            a.check();
        }
    }
}
