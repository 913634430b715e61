//! Adding, finding and removing names in a cached directory.
//!
//! Design: the parsed entry list of a cached directory is kept in step with its bytes, so a lookup
//! is a scan of names in memory. A new name gets its alias from [`crate::name::plan`]; when it needs
//! a `~N` tail, the lowest N not used by any short name in the directory is taken. Removing marks
//! every slot of the name (long-name slots included) deleted with 0xE5, as every FAT driver does.

use alloc::vec::Vec;
use blockdev::BlockDevice;
use protocol::fs::NodeId;
use protocol::{Error, Result};

use crate::dirent::{lfn_slots, Named, Short, DELETED, SLOT};
use crate::name::{alias, plan, same_name, short_display, validate, Plan};
use crate::volume::FatFs;

/// Most `~N` aliases tried before giving up on a name.
const MAX_TAIL: u32 = 999_999;

impl<D: BlockDevice> FatFs<D> {
    /// Find `name` in directory `dir` (by long name or by its short alias).
    pub(crate) fn find(&mut self, dir: NodeId, name: &str) -> Result<Named> {
        self.load_dir(dir)?;
        let d = self.dirs.get(&dir).ok_or(Error::NotFound)?;
        let hit = d.entries.iter().find(|e| {
            same_name(&e.name, name)
                || (e.first_slot != e.slot && name.len() <= 12 && same_name(&short_display(&e.short, 0), name))
        });
        hit.cloned().ok_or(Error::NotFound)
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
                let d = self.dirs.get(&dir).ok_or(Error::NotFound)?;
                let taken = |s: &[u8; 11]| d.entries.iter().any(|e| &e.short == s);
                let short = (1..=MAX_TAIL)
                    .map(|n| alias(&base, &ext, n))
                    .find(|s| !taken(s))
                    .ok_or(Error::NoSpace)?;
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
        let named = Named {
            name: name.into(),
            short: ent.name,
            first_slot: first,
            slot: first + slots.len() as u32 - 1,
        };
        let d = self.dirs.get_mut(&dir).ok_or(Error::NotFound)?;
        let at = d.entries.partition_point(|e| e.slot < named.slot);
        d.entries.insert(at, named.clone());
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
        let d = self.dirs.get_mut(&dir).ok_or(Error::NotFound)?;
        d.entries.retain(|x| x.slot != e.slot);
        self.by_loc.remove(&(dir, e.slot));
        Ok(())
    }

    /// True when directory `id` has no entries besides `.` and `..`.
    pub(crate) fn dir_is_empty(&mut self, id: NodeId) -> Result<bool> {
        self.load_dir(id)?;
        Ok(self.dirs.get(&id).is_none_or(|d| d.entries.is_empty()))
    }
}
