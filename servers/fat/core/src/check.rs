//! A structural checker in the spirit of `fsck.fat -n`: reads only, reports everything it finds.
//!
//! Design: after a commit, the on-disk FAT copies are read back and compared, then the directory
//! tree is walked from the root *as stored on disk* (not through the caches), marking each cluster
//! with its owner. A cluster reached twice is a cross-link (the one failure our write order must
//! never produce); a chain shorter than its file size, a free or out-of-range link, a wrong `.` or
//! `..`, or a duplicate short name is an error; allocated clusters nobody owns are lost clusters
//! (what a power cut may legitimately leave). FSInfo's free count must match the FAT.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use blockdev::{BlockDevice, SECTOR_SIZE};
use protocol::Result;

use crate::bpb::{le32, FatType};
use crate::dirent::{parse, Short, SLOT};
use crate::table::raw_entry;
use crate::volume::FatFs;

/// A directory still to visit: (path, clusters (None = the fixed root), own cluster as `.` must
/// record it, parent cluster as `..` must record it, depth).
type Pending = (String, Option<Vec<u32>>, u32, u32, usize);

/// Directories nested deeper than this are reported instead of followed.
const MAX_DEPTH: usize = 256;

/// What [`FatFs::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub fat_type: FatType,
    pub files: u32,
    pub dirs: u32,
    pub used_clusters: u32,
    pub free_clusters: u32,
    /// Allocated clusters that no file or directory owns.
    pub lost_clusters: u32,
    /// Clusters reached from more than one chain (or twice from one).
    pub cross_linked: u32,
    /// The clean-shutdown bit is clear.
    pub dirty: bool,
    pub errors: Vec<String>,
}

impl CheckReport {
    /// No errors, no lost clusters, no cross-links.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty() && self.lost_clusters == 0 && self.cross_linked == 0
    }
}

impl core::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        writeln!(
            f,
            "{:?}: {} files, {} directories, {} used / {} free clusters, {} lost, {} cross-linked{}",
            self.fat_type,
            self.files,
            self.dirs,
            self.used_clusters,
            self.free_clusters,
            self.lost_clusters,
            self.cross_linked,
            if self.dirty { ", dirty" } else { "" }
        )?;
        for e in &self.errors {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

struct Walk<'a> {
    kind: FatType,
    fat: &'a [u8],
    max: u32,
    owned: Vec<bool>,
    report: CheckReport,
}

impl Walk<'_> {
    /// Follow and claim a chain; returns its clusters (cut short at the first problem).
    fn chain(&mut self, first: u32, path: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let mut c = first;
        loop {
            if c < 2 || c > self.max {
                self.report.errors.push(format!("{path}: chain points outside the volume ({c})"));
                return out;
            }
            if self.owned[c as usize] {
                self.report.cross_linked += 1;
                self.report.errors.push(format!("{path}: cluster {c} is cross-linked"));
                return out;
            }
            self.owned[c as usize] = true;
            out.push(c);
            let v = raw_entry(self.kind, self.fat, c);
            if v >= self.kind.eoc_min() {
                return out;
            }
            if v == 0 || v == self.kind.bad() {
                self.report.errors.push(format!("{path}: cluster {c} in a chain is free or bad"));
                return out;
            }
            c = v;
        }
    }
}

impl<D: BlockDevice> FatFs<D> {
    /// Commit, then check the on-disk structure; see the module documentation.
    pub fn check(&mut self) -> Result<CheckReport> {
        self.sync_all()?;
        let geo = self.geo.clone();
        let kind = geo.fat_type;
        let mut fats = Vec::new();
        let copies = if geo.active_fat.is_some() { 1 } else { geo.num_fats as u64 };
        for copy in 0..copies {
            let mut b = vec![0u8; geo.fat_bytes as usize];
            self.dev_read(geo.primary_fat_offset() + copy * geo.fat_bytes, &mut b)?;
            fats.push(b);
        }
        let mut w = Walk {
            kind,
            fat: &fats[0],
            max: geo.clusters + 1,
            owned: vec![false; geo.clusters as usize + 2],
            report: CheckReport {
                fat_type: kind,
                files: 0,
                dirs: 0,
                used_clusters: 0,
                free_clusters: 0,
                lost_clusters: 0,
                cross_linked: 0,
                dirty: false,
                errors: Vec::new(),
            },
        };
        for (i, f) in fats.iter().enumerate().skip(1) {
            if let Some(at) = f.iter().zip(&fats[0]).position(|(a, b)| a != b) {
                w.report.errors.push(format!("FAT copy {} differs from the first at byte {at}", i + 1));
            }
        }
        let cs = geo.cluster_size as usize;
        let mut stack: Vec<Pending> = Vec::new();
        if kind == FatType::Fat32 {
            let chain = w.chain(geo.root_cluster, "/");
            stack.push((String::from("/"), Some(chain), 0, 0, 0));
        } else {
            stack.push((String::from("/"), None, 0, 0, 0));
        }
        while let Some((path, clusters, own, parent, depth)) = stack.pop() {
            let data = match &clusters {
                None => {
                    let mut d = vec![0u8; geo.root_bytes as usize];
                    self.dev_read(geo.root_offset, &mut d)?;
                    d
                }
                Some(cl) => {
                    let mut d = vec![0u8; cl.len() * cs];
                    for (i, &c) in cl.iter().enumerate() {
                        self.dev_read(geo.cluster_offset(c), &mut d[i * cs..(i + 1) * cs])?;
                    }
                    d
                }
            };
            if path != "/" && data.len() < 2 * SLOT {
                w.report.errors.push(format!("{path}: directory has no readable cluster"));
                continue;
            }
            if path != "/" {
                let dot = Short::decode(&data[..SLOT]);
                let dotdot = Short::decode(&data[SLOT..2 * SLOT]);
                if &dot.name != b".          " || dot.cluster != own {
                    w.report.errors.push(format!("{path}: bad '.' entry"));
                }
                if &dotdot.name != b"..         " || dotdot.cluster != parent {
                    w.report.errors.push(format!("{path}: bad '..' entry"));
                }
            }
            let mut shorts: Vec<[u8; 11]> = Vec::new();
            for e in parse(&data) {
                let at = e.slot as usize * SLOT;
                let ent = Short::decode(&data[at..at + SLOT]);
                let child = if path == "/" { format!("/{}", e.name) } else { format!("{path}/{}", e.name) };
                if shorts.contains(&ent.name) {
                    w.report.errors.push(format!("{child}: duplicate short name"));
                }
                shorts.push(ent.name);
                if ent.is_dir() {
                    w.report.dirs += 1;
                    if ent.cluster == 0 {
                        w.report.errors.push(format!("{child}: directory without a cluster"));
                    } else if depth >= MAX_DEPTH {
                        w.report.errors.push(format!("{child}: nested too deep"));
                    } else {
                        let chain = w.chain(ent.cluster, &child);
                        let me = if path == "/" { 0 } else { own };
                        stack.push((child, Some(chain), ent.cluster, me, depth + 1));
                    }
                    continue;
                }
                w.report.files += 1;
                let need = (ent.size as u64).div_ceil(cs as u64) as usize;
                let len = if ent.cluster == 0 { 0 } else { w.chain(ent.cluster, &child).len() };
                if len < need {
                    w.report.errors.push(format!("{child}: {} bytes but only {len} clusters", ent.size));
                } else if len > need {
                    w.report.errors.push(format!("{child}: chain of {len} clusters is longer than its size"));
                }
            }
        }
        let mut r = w.report;
        for c in 2..=geo.clusters + 1 {
            let v = raw_entry(kind, &fats[0], c);
            if v == 0 {
                r.free_clusters += 1;
            } else if v != kind.bad() {
                r.used_clusters += 1;
                if !w.owned[c as usize] {
                    r.lost_clusters += 1;
                }
            }
        }
        r.dirty = match kind {
            FatType::Fat12 => false,
            FatType::Fat16 => raw_entry(kind, &fats[0], 1) & 0x8000 == 0,
            FatType::Fat32 => le32(&fats[0], 4) & 0x0800_0000 == 0,
        };
        if let Some(off) = geo.fsinfo_offset {
            let mut s = [0u8; SECTOR_SIZE];
            self.dev_read(off, &mut s)?;
            let free = le32(&s, 488);
            if le32(&s, 0) == 0x4161_5252 && free != u32::MAX && free != r.free_clusters {
                r.errors.push(format!("FSInfo free count {free} but the FAT has {}", r.free_clusters));
            }
        }
        Ok(r)
    }
}
