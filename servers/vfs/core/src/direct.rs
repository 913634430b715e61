//! Direct-read grants (vfs `direct_read`): a process reads a file it opened straight from the
//! filesystem server, one IPC hop instead of two.
//!
//! Design: the vfs keeps the authority (names, descriptors, open modes) and hands out a grant only
//! for a description its caller holds with read access to a non-directory. The grant comes from the
//! filesystem (`FileSystem::grant_direct`: the server behind a `RemoteFs` records (caller, node));
//! one grant per open-file description, so `dup`ed descriptors share it and asking twice costs the
//! server nothing. It is revoked when the description's last descriptor closes, which includes a
//! process's exit; grants of a filesystem server that restarted died with it (`Vfs::reopen` forgets
//! them), and a restarted vfs grants afresh, the server dropping the old incarnation's grants.

use protocol::api::grants::DirectGrant;
use protocol::fs::FileType;
use protocol::{Error, Result};

use crate::vfs::{OpenFile, Pid, Vfs};

/// Times a grant is asked again of a filesystem server that restarted under the request.
const GRANT_RETRIES: u32 = 3;

impl Vfs {
    /// The direct-read grant for `fd` of `pid`, asked of the filesystem on first use.
    pub fn direct_read(&mut self, pid: Pid, fd: u32) -> Result<DirectGrant> {
        let f = self.file(pid, fd)?;
        if !f.flags.can_read() {
            return Err(Error::BadFileDescriptor);
        }
        if f.kind == FileType::Directory {
            return Err(Error::IsADirectory);
        }
        if let Some(g) = f.direct {
            return Ok(g);
        }
        let loc = f.loc;
        let mut tries = 0;
        let grant = loop {
            // A restart noticed here re-opens the mount's files (and forgets their grants) before
            // the grant is recorded, so what is recorded comes from the running server.
            match self.with_fs(loc.mount, |fs| fs.grant_direct(pid, loc.node)) {
                Err(Error::ServerRestarted) if tries < GRANT_RETRIES => tries += 1,
                r => break r?,
            }
        };
        let id = self.procs.get(&pid).ok_or(Error::BadFileDescriptor)?.get(fd)?;
        if let Some(f) = self.files.get_mut(&id) {
            f.direct = Some(grant);
        }
        Ok(grant)
    }

    /// End the grant of a description being released, if it has one. A failure changes nothing the
    /// caller could act on: a server that restarted or died holds no grants.
    pub(crate) fn revoke_direct(&mut self, f: &OpenFile) {
        if let Some(g) = f.direct {
            let _ = self.with_fs(f.loc.mount, |fs| fs.revoke_direct(g.handle));
        }
    }
}
