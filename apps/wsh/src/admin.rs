//! `snapshot` and `scrub`: filesystem administration through the vfs server.
//!
//! Design: both go to the vfs interface's snapshot and scrub operations with a path (the mount
//! point, `/` by default, relative paths from the current directory), and the vfs passes them to the
//! filesystem holding that path; a filesystem without them (FAT) answers "operation not supported",
//! which becomes the usual one error line. A scrub that found blocks it could not repair is a failed
//! command (its report is still printed), so a script stops on real damage.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use protocol::ipc::Transport;

use crate::shell::{CmdError, Env, Hooks};

/// A vfs error about `mount` as the shell's error.
fn on(mount: &str) -> impl FnOnce(protocol::Error) -> CmdError + '_ {
    move |e| CmdError::at(mount)(e.into())
}

const SNAPSHOT_USAGE: &str = "snapshot create|delete NAME [MOUNT] | snapshot list [MOUNT]";

impl<T: Transport, H: Hooks> Env<T, H> {
    fn mount_arg(&self, arg: Option<&String>) -> String {
        arg.map_or_else(|| String::from("/"), |a| self.resolve(a))
    }

    pub(crate) fn snapshot(&mut self, args: &[String], out: &mut dyn Write) -> Result<(), CmdError> {
        let vfs = self.fs.client();
        match args {
            [op, name] | [op, name, _] if op == "create" || op == "delete" => {
                let mount = self.mount_arg(args.get(2));
                if op == "create" {
                    vfs.snapshot_create(&mount, name).map_err(on(&mount))?;
                    writeln!(out, "snapshot {name} of {mount} created")?;
                } else {
                    vfs.snapshot_delete(&mount, name).map_err(on(&mount))?;
                    writeln!(out, "snapshot {name} of {mount} deleted")?;
                }
                Ok(())
            }
            [op] | [op, _] if op == "list" => {
                let mount = self.mount_arg(args.get(1));
                let mut all = Vec::new();
                loop {
                    let start =
                        u32::try_from(all.len()).map_err(|_| CmdError::Msg(String::from("too many snapshots")))?;
                    let page = vfs.snapshot_list(&mount, start).map_err(on(&mount))?;
                    if page.is_empty() {
                        break;
                    }
                    all.extend(page);
                }
                writeln!(out, "{} snapshots of {mount}", all.len())?;
                for s in all {
                    writeln!(out, "  {}  txid {}  created {}", s.name, s.txid, s.created.secs)?;
                }
                Ok(())
            }
            _ => Err(CmdError::Usage(SNAPSHOT_USAGE)),
        }
    }

    pub(crate) fn scrub(&mut self, args: &[String], out: &mut dyn Write) -> Result<(), CmdError> {
        if args.len() > 1 {
            return Err(CmdError::Usage("scrub [MOUNT]"));
        }
        let mount = self.mount_arg(args.first());
        let r = self.fs.client().scrub(&mount).map_err(on(&mount))?;
        writeln!(
            out,
            "scrub {mount}: {} metadata copies checked, {} repaired; {} data blocks checked; {} superblocks rewritten",
            r.node_copies_checked, r.node_copies_repaired, r.data_blocks_checked, r.superblocks_repaired
        )?;
        if r.is_clean() {
            writeln!(out, "scrub {mount}: clean")?;
            return Ok(());
        }
        writeln!(out, "scrub {mount}: {} unrepairable blocks, first at {:?}", r.unrepairable, r.unrepairable_blocks)?;
        Err(CmdError::Msg(alloc::format!("{mount}: {} blocks could not be repaired", r.unrepairable)))
    }
}
