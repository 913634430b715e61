//! Direct reads: a file's reads go to its filesystem server itself, one IPC hop instead of two
//! (app → vfs → filesystem server).
//!
//! Design: the vfs keeps the authority. On a file's first positioned read (a seek then a read: the
//! random-access pattern, where the hop matters), the file asks the vfs for a grant
//! (`vfs::direct_read`: the filesystem server's id and a handle, see `protocol::api::grants`);
//! from then on every read of that file with a known position is a `filesystem::direct_read` to
//! that server, which checks that the caller is the grant's client. Files read once from the start
//! never ask, so a whole-file read costs no extra call.
//!
//! Never stale, never stuck: writes go through the vfs to the same server synchronously, so a
//! direct read sees them. While this file has asynchronous writes outstanding (queued here or at
//! the vfs), or this connection has a transaction open, reads go through the vfs, which holds that
//! state, so what a read sees then never depends on the path it took. A direct read that fails for any reason is done again through the
//! vfs, which gives the answer (and re-opens files after a filesystem server restart); a restarted
//! or dead server or an unknown grant drops the grant, to be asked for again on the next positioned
//! read; any other failure (no authority to call the server, a server without grants, a malformed
//! reply) keeps this file on the vfs path. A grant belongs to the vfs epoch it was given in: after
//! a vfs restart the file re-opens and asks again.

use protocol::api::filesystem;
use protocol::api::grants::DirectGrant;
use protocol::ipc::Transport;
use protocol::Error as PError;

use crate::file::Inner;

/// Whether a file reads directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direct {
    /// No grant; the next positioned read asks for one.
    Unasked,
    Granted {
        grant: DirectGrant,
        epoch: u32,
    },
    /// The vfs path only.
    Refused,
}

impl<T: Transport> Inner<T> {
    /// Read at `offset` into `buf` from the filesystem server directly, asking for a grant first
    /// when `ask` and there is none. `None`: read through the vfs instead.
    pub(crate) fn read_direct(&self, offset: u64, buf: &mut [u8], ask: bool) -> Option<usize> {
        if !self.direct_allowed() {
            return None;
        }
        let grant = self.grant(ask)?;
        let server = filesystem::Client::new(self.fs.client().channel.transport(), grant.server);
        let r = server.direct_read(grant.handle, offset, buf);
        let (next, n) = match r {
            // A server claiming more than it was lent is broken; never trust the count.
            Ok(n) if n as usize > buf.len() => (Direct::Refused, None),
            Ok(n) => {
                self.fs.count_direct_read();
                return Some(n as usize);
            }
            Err(PError::ServerRestarted | PError::ServerDead | PError::BadFileDescriptor) => (Direct::Unasked, None),
            Err(_) => (Direct::Refused, None),
        };
        *self.direct.borrow_mut() = next;
        n
    }

    fn direct_allowed(&self) -> bool {
        self.flags.can_read()
            && self.pending_writes.get() == 0
            && self.fs.open_transactions() == 0
            && self.fs.direct_reads_on()
    }

    /// The grant of this vfs epoch, asked for if `ask` and there is none.
    fn grant(&self, ask: bool) -> Option<DirectGrant> {
        match *self.direct.borrow() {
            Direct::Granted { grant, epoch } if epoch == self.fs.epoch() => return Some(grant),
            Direct::Refused => return None,
            _ if !ask => return None,
            _ => {}
        }
        let asked = self.fd().map_err(|_| PError::ServerDead).and_then(|fd| self.client().direct_read(fd));
        let (next, grant) = match asked {
            Ok(grant) => (Direct::Granted { grant, epoch: self.fs.epoch() }, Some(grant)),
            Err(PError::ServerRestarted | PError::ServerDead) => (Direct::Unasked, None),
            Err(_) => (Direct::Refused, None),
        };
        *self.direct.borrow_mut() = next;
        grant
    }
}
