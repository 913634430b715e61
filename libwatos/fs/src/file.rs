//! [`File`] and [`OpenOptions`]: open files that survive a vfs restart.
//!
//! Design: a `File` shares an [`Inner`] (so an async [`crate::Queue`] can keep a file alive while
//! its requests are pending). `Inner` remembers what a re-open needs: the path, the open flags, the
//! application's position `pos` and the epoch of its descriptor. It also tracks `vfs_pos`, where the
//! vfs believes the offset is, so a seek goes to the server only when a read or write needs it (a
//! `seek` call is local; positioned queue writes move the vfs offset without moving `pos`).
//! `pos == None` means "at the end of the file", the state after an append write.
//!
//! The vfs `read` and `write` move the server's offset, so the interface marks them `once`; since this
//! layer knows the position, a read interrupted by a restart is still safe to redo here: re-open,
//! seek, read again. A write is not (it may have landed), so it reports the restart and leaves `pos`
//! where it was; the next call re-opens.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use protocol::api::vfs::{Client, OpenFlags, ReadReq, Whence};
use protocol::ipc::Transport;

use crate::dir::Metadata;
use crate::direct::Direct;
use crate::error::{Error, ErrorKind, Result};
use crate::handle::Fs;
use crate::{MAX_IO, MAX_REOPENS};

/// Reads up to this size whose position is not the vfs offset are sent as one positioned read.
const POSITIONED_READ_MAX: usize = 64 * 1024;

/// Where [`File::seek`] counts from, as `std::io::SeekFrom`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekFrom {
    Start(u64),
    End(i64),
    Current(i64),
}

/// How to open a file, as `std::fs::OpenOptions`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    create: bool,
    truncate: bool,
    create_new: bool,
    mode: Option<u32>,
}

impl OpenOptions {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn read(&mut self, on: bool) -> &mut Self {
        self.read = on;
        self
    }
    pub fn write(&mut self, on: bool) -> &mut Self {
        self.write = on;
        self
    }
    /// Every write goes to the end of the file (implies write access).
    pub fn append(&mut self, on: bool) -> &mut Self {
        self.append = on;
        self
    }
    pub fn create(&mut self, on: bool) -> &mut Self {
        self.create = on;
        self
    }
    pub fn truncate(&mut self, on: bool) -> &mut Self {
        self.truncate = on;
        self
    }
    /// Create the file, failing with `AlreadyExists` if it exists.
    pub fn create_new(&mut self, on: bool) -> &mut Self {
        self.create_new = on;
        self
    }
    /// Permission bits of a created file (default 0o644).
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = Some(mode);
        self
    }

    /// The vfs flags, with std's rules: creating or truncating needs write access, and at least one
    /// access mode must be asked for.
    fn flags(&self) -> Result<OpenFlags> {
        let writes = self.write || self.append;
        let needs_write = self.create || self.create_new || self.truncate;
        if (!writes && (!self.read || needs_write)) || (self.truncate && self.append) {
            return Err(Error::new(ErrorKind::InvalidInput));
        }
        let mut f = OpenFlags(0);
        for (on, flag) in [
            (self.read, OpenFlags::READ),
            (self.write, OpenFlags::WRITE),
            (self.append, OpenFlags::APPEND),
            (self.create || self.create_new, OpenFlags::CREATE),
            (self.truncate, OpenFlags::TRUNCATE),
            (self.create_new, OpenFlags::EXCLUSIVE),
        ] {
            if on {
                f = f | flag;
            }
        }
        Ok(f)
    }

    pub fn open<T: Transport>(&self, fs: &Fs<T>, path: &str) -> Result<File<T>> {
        let flags = self.flags()?;
        if self.create || self.create_new || self.truncate {
            fs.changing_names();
        }
        let mut tries = 0;
        let fd = loop {
            match fs.client().open(path, flags, self.mode.unwrap_or(0o644)) {
                // A vfs that restarted has no descriptor from the lost call, and opening (creating,
                // truncating) again gives the same result, unless the open had to be the one that
                // created the file.
                Err(protocol::Error::ServerRestarted) if !self.create_new && tries < MAX_REOPENS => tries += 1,
                r => break r?,
            }
        };
        let state =
            State { fd: Some(fd), epoch: fs.epoch(), pos: Some(0), vfs_pos: Some(0), unsynced: false, lost: false };
        Ok(File {
            inner: Rc::new(Inner {
                fs: fs.clone(),
                path: String::from(path),
                flags,
                state: RefCell::new(state),
                direct: RefCell::new(Direct::Unasked),
                pending_writes: Cell::new(0),
            }),
        })
    }
}

struct State {
    /// `None` after a failed re-open.
    fd: Option<u32>,
    /// The vfs epoch `fd` belongs to.
    epoch: u32,
    /// The application's position; `None` = at the end of the file.
    pos: Option<u64>,
    /// The vfs offset of `fd` as far as we know.
    vfs_pos: Option<u64>,
    /// A change was sent through this file (written, truncated) since its last successful fsync.
    unsynced: bool,
    /// The vfs restarted while changes were unsynced: the new vfs cannot vouch for them (the
    /// filesystem server that took them may have restarted too, before they became durable), so
    /// the next fsync reports `ServerRestarted` instead of an Ok that could be a lie.
    lost: bool,
}

/// What a request needs before it is sent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// A valid descriptor.
    Fd,
    /// A valid descriptor whose vfs offset is the application's position.
    Pos,
}

pub(crate) struct Inner<T: Transport> {
    pub(crate) fs: Fs<T>,
    path: String,
    pub(crate) flags: OpenFlags,
    state: RefCell<State>,
    /// Whether reads go to the filesystem server directly (see `direct`).
    pub(crate) direct: RefCell<Direct>,
    /// Asynchronous writes of this file not yet finished (see `aio::PendingWrite`).
    pub(crate) pending_writes: Cell<u32>,
}

impl<T: Transport> Inner<T> {
    pub(crate) fn client(&self) -> &Client<T> {
        self.fs.client()
    }

    /// A descriptor of the current vfs epoch, re-opening by path if the vfs restarted since.
    pub(crate) fn fd(&self) -> Result<u32> {
        let now = self.fs.epoch();
        {
            let st = self.state.borrow();
            if let (Some(fd), true) = (st.fd, st.epoch == now) {
                return Ok(fd);
            }
        }
        // The old descriptor died with the old vfs. Re-open without the flags that would change
        // the file again.
        let flags = OpenFlags(self.flags.0 & !(OpenFlags::CREATE.0 | OpenFlags::TRUNCATE.0 | OpenFlags::EXCLUSIVE.0));
        let mut st = self.state.borrow_mut();
        st.fd = None;
        st.lost |= st.unsynced;
        st.unsynced = false;
        let fd = self.client().open(&self.path, flags, 0)?;
        (st.fd, st.epoch, st.vfs_pos) = (Some(fd), self.fs.epoch(), Some(0));
        Ok(fd)
    }

    fn prepare(&self, need: Need) -> Result<u32> {
        let fd = self.fd()?;
        if need == Need::Pos {
            let (pos, vfs_pos) = {
                let st = self.state.borrow();
                (st.pos, st.vfs_pos)
            };
            let now = match pos {
                Some(p) if vfs_pos == Some(p) => p,
                Some(p) => self.client().seek(
                    fd,
                    Whence::Start,
                    i64::try_from(p).map_err(|_| Error::new(ErrorKind::InvalidInput))?,
                )?,
                None => self.client().seek(fd, Whence::End, 0)?,
            };
            let mut st = self.state.borrow_mut();
            st.pos = Some(now);
            st.vfs_pos = Some(now);
        }
        Ok(fd)
    }

    /// Run a request that is safe to repeat: after a vfs restart (reported, or noticed because the
    /// epoch moved while the stub retried with a descriptor the new server never issued) the file is
    /// re-opened and the request sent again.
    pub(crate) fn idempotent<R>(
        &self,
        need: Need,
        mut op: impl FnMut(&Client<T>, u32) -> protocol::Result<R>,
    ) -> Result<R> {
        let mut tries = 0;
        loop {
            let epoch = self.fs.epoch();
            let r = self.prepare(need).and_then(|fd| op(self.client(), fd).map_err(Error::from));
            let restarted = self.fs.epoch() != epoch || matches!(&r, Err(e) if e.kind() == ErrorKind::ServerRestarted);
            if !restarted {
                return r;
            }
            if tries >= MAX_REOPENS {
                return Err(protocol::Error::ServerRestarted.into());
            }
            tries += 1;
        }
    }

    /// Run a request whose outcome is unknown after a restart: only the preparation is retried.
    pub(crate) fn once<R>(&self, need: Need, op: impl FnOnce(&Client<T>, u32) -> protocol::Result<R>) -> Result<R> {
        let fd = self.idempotent(need, |_, fd| Ok(fd))?;
        Ok(op(self.client(), fd)?)
    }

    /// [`Inner::once`] for a request that changes the file: until an fsync succeeds, the change
    /// counts as unsynced (even if the call failed: it may have been applied).
    pub(crate) fn change<R>(&self, need: Need, op: impl FnOnce(&Client<T>, u32) -> protocol::Result<R>) -> Result<R> {
        let fd = self.idempotent(need, |_, fd| Ok(fd))?;
        self.state.borrow_mut().unsynced = true;
        Ok(op(self.client(), fd)?)
    }

    /// A change of this file is about to be sent by another path (an asynchronous queue).
    pub(crate) fn mark_unsynced(&self) {
        self.state.borrow_mut().unsynced = true;
    }

    fn is_append(&self) -> bool {
        self.flags.contains(OpenFlags::APPEND)
    }
}

impl<T: Transport> Drop for Inner<T> {
    fn drop(&mut self) {
        let st = self.state.borrow();
        if let (Some(fd), true) = (st.fd, st.epoch == self.fs.epoch()) {
            // Nothing useful can be done with a close error in a destructor; a vfs that restarted
            // has already forgotten the descriptor.
            let _ = self.client().close(fd);
        }
    }
}

/// An open file; closed when dropped.
pub struct File<T: Transport> {
    pub(crate) inner: Rc<Inner<T>>,
}

impl<T: Transport> File<T> {
    /// Open `path` read-only.
    pub fn open(fs: &Fs<T>, path: &str) -> Result<File<T>> {
        fs.open(path)
    }

    /// Create or truncate `path`, write-only.
    pub fn create(fs: &Fs<T>, path: &str) -> Result<File<T>> {
        fs.create(path)
    }

    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// The path this file was opened by.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// Read at the position into `buf` (at most [`MAX_IO`] bytes); 0 means end of file.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let len = buf.len().min(MAX_IO);
        if len == 0 {
            return Ok(0);
        }
        let (pos, vfs_pos) = {
            let st = self.inner.state.borrow();
            (st.pos, st.vfs_pos)
        };
        let positioned = matches!(pos, Some(p) if vfs_pos != Some(p) && len <= POSITIONED_READ_MAX);
        // Straight from the filesystem server when the file has a grant (a positioned read asks
        // for one); the vfs offset stays where it is.
        let direct = pos.and_then(|p| self.inner.read_direct(p, &mut buf[..len], positioned));
        let n = match (direct, pos) {
            (Some(n), _) => n,
            // The vfs offset is elsewhere (after a seek, a re-open or a queue write) and the read is
            // small: one positioned read (a batch of one, whose lease the vfs lends on to the
            // filesystem server) instead of a seek plus a read.
            (None, Some(p)) if positioned => {
                let req = ReadReq { fd: 0, offset: p, len: len as u32 };
                let counts = self
                    .inner
                    .idempotent(Need::Fd, |c, fd| c.batch_read(alloc::vec![ReadReq { fd, ..req }], &mut buf[..len]))?;
                let [n] = counts[..] else { return Err(protocol::Error::Malformed.into()) };
                n as usize
            }
            _ => self.inner.idempotent(Need::Pos, |c, fd| c.read(fd, &mut buf[..len]))? as usize,
        };
        // A server claiming more than it was lent is broken; never let that reach a slice index.
        if n > len {
            return Err(protocol::Error::Malformed.into());
        }
        let mut st = self.inner.state.borrow_mut();
        st.pos = st.pos.map(|p| p + n as u64);
        // A positioned or direct read leaves the vfs offset where it is (a re-open on the way may
        // have moved it to 0, which `vfs_pos` already says); a plain read moved it with the position.
        if !positioned && direct.is_none() {
            st.vfs_pos = st.pos;
        }
        Ok(n)
    }

    /// Read everything from the position to the end of the file; returns the byte count.
    pub fn read_to_end(&mut self, out: &mut Vec<u8>) -> Result<usize> {
        let start = out.len();
        let mut chunk = 64 * 1024;
        loop {
            let at = out.len();
            out.resize(at + chunk, 0);
            match self.read(&mut out[at..]) {
                Ok(0) => {
                    out.truncate(at);
                    return Ok(at - start);
                }
                Ok(n) => out.truncate(at + n),
                Err(e) => {
                    out.truncate(at);
                    return Err(e);
                }
            }
            chunk = (chunk * 2).min(MAX_IO);
        }
    }

    /// Read the rest of the file as UTF-8 text; `InvalidData` (and nothing appended) if it is not.
    pub fn read_to_string(&mut self, out: &mut String) -> Result<usize> {
        let mut bytes = Vec::new();
        let n = self.read_to_end(&mut bytes)?;
        let text = core::str::from_utf8(&bytes).map_err(|_| Error::new(ErrorKind::InvalidData))?;
        out.push_str(text);
        Ok(n)
    }

    /// Write `data` at the position (at the end with append); returns how much was written (at most
    /// [`MAX_IO`]). After a vfs restart during the call: `ServerRestarted`, position unchanged.
    pub fn write(&mut self, data: &[u8]) -> Result<usize> {
        let len = data.len().min(MAX_IO);
        if len == 0 {
            return Ok(0);
        }
        let need = if self.inner.is_append() { Need::Fd } else { Need::Pos };
        let n = self.inner.change(need, |c, fd| c.write(fd, &data[..len]))? as usize;
        if n > len {
            return Err(protocol::Error::Malformed.into());
        }
        let mut st = self.inner.state.borrow_mut();
        if self.inner.is_append() {
            st.pos = None;
            st.vfs_pos = None;
        } else {
            let at = st.pos.map(|p| p + n as u64);
            st.pos = at;
            st.vfs_pos = at;
        }
        Ok(n)
    }

    /// Write all of `data`; `WriteZero` if the server stops accepting bytes.
    pub fn write_all(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            match self.write(data)? {
                0 => return Err(Error::new(ErrorKind::WriteZero)),
                n => data = &data[n..],
            }
        }
        Ok(())
    }

    /// Move the position; returns the new one. Seeking before the start is `InvalidInput`.
    pub fn seek(&mut self, to: SeekFrom) -> Result<u64> {
        let (base, delta) = match to {
            SeekFrom::Start(p) => (p, 0),
            SeekFrom::Current(d) => (self.stream_position()?, d),
            SeekFrom::End(d) => (self.metadata()?.len(), d),
        };
        let pos = base.checked_add_signed(delta).ok_or(Error::new(ErrorKind::InvalidInput))?;
        // Local only: the vfs offset follows when a read or write needs it.
        self.inner.state.borrow_mut().pos = Some(pos);
        Ok(pos)
    }

    /// The current position.
    pub fn stream_position(&mut self) -> Result<u64> {
        if let Some(p) = self.inner.state.borrow().pos {
            return Ok(p);
        }
        self.inner.idempotent(Need::Pos, |_, _| Ok(()))?;
        Ok(self.inner.state.borrow().pos.unwrap_or(0))
    }

    /// Cut or extend (with zeros) the file to `size` bytes; the position does not move.
    pub fn set_len(&self, size: u64) -> Result<()> {
        self.inner.change(Need::Fd, |c, fd| c.truncate(fd, size))
    }

    /// Make everything written so far durable.
    pub fn sync_all(&self) -> Result<()> {
        // Changes sent before a vfs restart reached some incarnation of the filesystem server, but
        // the new vfs cannot tell whether it is the one serving the file now (it may have restarted
        // too, and lost them), so an fsync after such a restart reports `ServerRestarted` once
        // (`State::lost`) instead of retrying into an Ok. With nothing unsynced a retry is safe.
        // A `ServerRestarted` the vfs answers itself (the filesystem server restarted since the
        // writes) is the answer too.
        let mut tries = 0;
        loop {
            let epoch = self.inner.fs.epoch();
            let r = self.inner.once(Need::Fd, |c, fd| c.fsync(fd));
            if self.inner.fs.epoch() != epoch && tries < MAX_REOPENS {
                // The vfs restarted during the call: the descriptor was stale. The next round
                // re-opens the file, which turns unsynced changes into `lost`.
                tries += 1;
                continue;
            }
            let names_lost = r.is_ok() && self.inner.fs.names_synced();
            let mut st = self.inner.state.borrow_mut();
            if r.is_ok() {
                st.unsynced = false;
            }
            if names_lost {
                st.lost = false;
                return Err(protocol::Error::ServerRestarted.into());
            }
            // Whatever the new vfs answered, it could not vouch for changes the file lost track of
            // when it was re-opened (before this call or during it).
            if core::mem::take(&mut st.lost) {
                return Err(protocol::Error::ServerRestarted.into());
            }
            return r;
        }
    }

    /// Same as [`File::sync_all`]: the servers do not distinguish data from metadata sync.
    pub fn sync_data(&self) -> Result<()> {
        self.sync_all()
    }

    pub fn metadata(&self) -> Result<Metadata> {
        Ok(Metadata::from(self.inner.idempotent(Need::Fd, |c, fd| c.fstat(fd))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(o: &OpenOptions) -> Result<u32> {
        o.flags().map(|f| f.0)
    }

    #[test]
    fn options_map_to_vfs_flags_with_std_rules() {
        assert_eq!(flags(OpenOptions::new().read(true)), Ok(OpenFlags::READ.0));
        let create = OpenOptions::new().write(true).create(true).truncate(true).flags().unwrap();
        assert_eq!(create, OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE);
        let excl = OpenOptions::new().write(true).create_new(true).flags().unwrap();
        assert!(excl.contains(OpenFlags::CREATE) && excl.contains(OpenFlags::EXCLUSIVE));
        assert!(OpenOptions::new().append(true).create(true).flags().unwrap().contains(OpenFlags::APPEND));
        for bad in [
            OpenOptions::new(),
            *OpenOptions::new().read(true).create(true),
            *OpenOptions::new().read(true).truncate(true),
            *OpenOptions::new().read(true).create_new(true),
            *OpenOptions::new().append(true).truncate(true),
        ] {
            assert_eq!(flags(&bad).unwrap_err().kind(), ErrorKind::InvalidInput, "{bad:?}");
        }
    }
}
