//! Adding, finding and removing names in a cached directory.
//!
//! Design: the parsed entry list of a cached directory is kept in step with its bytes, together
//! with an index of case-folded names (long names and their aliases) and the set of short names,
//! so a lookup or a `~N` search costs O(log n) per probe instead of a scan. A new name gets its alias from [`crate::name::plan`]; when it needs
//! a `~N` tail, the lowest N not used by any short name in the directory is taken. Removing marks
//! every slot of the name (long-name slots included) deleted with 0xE5, as every FAT driver does.

use alloc::string::String;
use alloc::vec::Vec;
use blockdev::BlockDevice;
use protocol::fs::NodeId;
use protocol::{Error, Result};

use crate::dirent::{lfn_slots, Named, Short, DELETED, SLOT};
use crate::name::{alias, fold, plan, short_display, validate, Plan, MAX_LFN};
use crate::volume::{Dir, FatFs, Index};

/// Most `~N` aliases tried before giving up on a name.
const MAX_TAIL: u32 = 999_999;

impl Index {
    fn keys(e: &Named) -> (String, Option<String>) {
        let alias = (e.first_slot != e.slot).then(|| fold(&short_display(&e.short, 0)));
        (fold(&e.name), alias)
    }

    fn add(&mut self, e: &Named) {
        let (name, alias) = Self::keys(e);
        if let Some(a) = alias {
            self.by_name.entry(a).or_insert(e.slot);
        }
        self.by_name.entry(name).or_insert(e.slot);
        self.shorts.insert(e.short);
    }

    fn remove(&mut self, e: &Named) {
        let (name, alias) = Self::keys(e);
        for k in core::iter::once(name).chain(alias) {
            if self.by_name.get(&k) == Some(&e.slot) {
                self.by_name.remove(&k);
            }
        }
        self.shorts.remove(&e.short);
    }
}

impl Dir {
    /// The name index, built on first use.
    fn index(&mut self) -> &mut Index {
        let entries = &self.entries;
        self.index.get_or_insert_with(|| {
            let mut ix = Index::default();
            entries.iter().for_each(|e| ix.add(e));
            ix
        })
    }

    /// Add a parsed entry (entries arrive in slot order when a directory is loaded).
    pub(crate) fn add(&mut self, e: Named) {
        if let Some(ix) = self.index.as_mut() {
            ix.add(&e);
        }
        match self.entries.last() {
            Some(last) if last.slot > e.slot => {
                let at = self.entries.partition_point(|x| x.slot < e.slot);
                self.entries.insert(at, e);
            }
            _ => self.entries.push(e),
        }
    }

    fn remove(&mut self, slot: u32) {
        let at = self.entries.partition_point(|x| x.slot < slot);
        if self.entries.get(at).is_some_and(|x| x.slot == slot) {
            let e = self.entries.remove(at);
            if let Some(ix) = self.index.as_mut() {
                ix.remove(&e);
            }
        }
    }

    fn get(&mut self, name: &str) -> Option<&Named> {
        let slot = *self.index().by_name.get(&fold(name))?;
        let at = self.entries.partition_point(|x| x.slot < slot);
        self.entries.get(at).filter(|x| x.slot == slot)
    }
}

impl<D: BlockDevice> FatFs<D> {
    /// Find `name` in directory `dir` (by long name or by its short alias).
    /// A name longer than any FAT name can be is `NameTooLong`, not `NotFound`, as POSIX asks.
    pub(crate) fn find(&mut self, dir: NodeId, name: &str) -> Result<Named> {
        if name.encode_utf16().nth(MAX_LFN).is_some() {
            return Err(Error::NameTooLong);
        }
        self.load_dir(dir)?;
        let d = self.dirs.get_mut(&dir).ok_or(Error::NotFound)?;
        d.get(name).cloned().ok_or(Error::NotFound)
    }

    /// Add `name` to directory `dir` with entry fields `ent` (its name and case are filled in).
    /// Returns the parsed entry and the short entry as written.
    pub(crate) fn insert_entry(&mut self, dir: NodeId, name: &str, mut ent: Short) -> Result<(Named, Short)> {
        let units = validate(name)?;
        self.load_dir(dir)?;
        let mut slots: Vec<[u8; SLOT]> = Vec::new();
        match plan(name) {
            Plan::Short(short, case) => {
                ent.name = short;
                ent.case = case;
            }
            Plan::Long { base, ext } => {
                let ix = self.dirs.get_mut(&dir).ok_or(Error::NotFound)?.index();
                let key = (base, ext);
                let start = ix.tails.get(&key).copied().unwrap_or(1);
                // From the remembered tail up, then the lower ones (freed by deletes) if need be.
                let n = (start..=MAX_TAIL)
                    .chain(1..start)
                    .find(|&n| !ix.shorts.contains(&alias(&key.0, &key.1, n)))
                    .ok_or(Error::NoSpace)?;
                let short = alias(&key.0, &key.1, n);
                ix.tails.insert(key, n + 1);
                ent.name = short;
                ent.case = 0;
                slots = lfn_slots(&units, &short);
            }
        }
        let mut raw = [0u8; SLOT];
        ent.encode(&mut raw);
        slots.push(raw);
        let first = self.free_slots(dir, slots.len())?;
        self.write_slots(dir, first, &slots)?;
        let named =
            Named { name: name.into(), short: ent.name, first_slot: first, slot: first + slots.len() as u32 - 1 };
        self.dirs.get_mut(&dir).ok_or(Error::NotFound)?.add(named.clone());
        Ok((named, ent))
    }

    /// Mark every slot of `e` deleted and forget the location.
    pub(crate) fn remove_entry(&mut self, dir: NodeId, e: &Named) -> Result<()> {
        let d = self.dirs.get(&dir).ok_or(Error::NotFound)?;
        let mut slots = Vec::with_capacity((e.slot - e.first_slot + 1) as usize);
        for i in e.first_slot..=e.slot {
            let mut s = [0u8; SLOT];
            s.copy_from_slice(&d.data[i as usize * SLOT..(i as usize + 1) * SLOT]);
            s[0] = DELETED;
            slots.push(s);
        }
        self.write_slots(dir, e.first_slot, &slots)?;
        self.dirs.get_mut(&dir).ok_or(Error::NotFound)?.remove(e.slot);
        self.by_loc.remove(&(dir, e.slot));
        Ok(())
    }

    /// True when directory `id` has no entries besides `.` and `..`.
    pub(crate) fn dir_is_empty(&mut self, id: NodeId) -> Result<bool> {
        self.load_dir(id)?;
        Ok(self.dirs.get(&id).is_none_or(|d| d.entries.is_empty()))
    }
}
