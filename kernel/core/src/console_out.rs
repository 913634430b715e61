//! Console output: no task can print a line that reads as the kernel's or as another program's.
//!
//! Design (after Fuchsia's debuglog, which stamps records with their sender, kept readable): kernel
//! lines begin with `[kernel] `; a program's lines usually begin with its own name and a colon
//! (`fstest: ...`, `CHECK PASS fstest: ...`, the prompt `wsh:/$ `) or are plain text. The kernel
//! looks at the start of every line a task writes and marks it with `NAME: ` (the writer's name) if
//! it starts like a line of someone else: with `[` or `KERNEL`, or with another program's name and
//! a colon, directly or after `CHECK PASS `/`CHECK FAIL `. A write that ends before such a start is
//! decided (`CHEC`, `fst`) is marked if it could still become one. So `[kernel] ...` at a line
//! start is the kernel's, and `X: ...` there is program X's (names come from the manifest, which
//! the system's builder writes). A writer's unfinished line continues unmarked only for that
//! writer: when another task or the kernel writes mid-line, the kernel ends the line first.

use crate::abi::TaskId;
use alloc::vec::Vec;

/// Where the console's current line stands and who wrote its last bytes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConsoleOut {
    /// The last byte written was not a newline.
    midline: bool,
    /// Who wrote it (`None`: the kernel).
    writer: Option<TaskId>,
}

/// Line starts reserved to the kernel.
const KERNEL_STARTS: [&[u8]; 2] = [b"[", b"KERNEL"];
/// What may come before a program's name on its line.
const CHECK_STARTS: [&[u8]; 3] = [b"", b"CHECK PASS ", b"CHECK FAIL "];

impl ConsoleOut {
    /// The bytes to send for task `id` (called `name`) writing `bytes`, given the names of every
    /// program: lines that start like someone else's marked, and a newline first if another writer
    /// left the line unfinished.
    pub fn task_write<'a>(
        &mut self,
        id: TaskId,
        name: &str,
        names: impl Iterator<Item = &'a str> + Clone,
        bytes: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len() + name.len() + 3);
        if self.midline && self.writer != Some(id) {
            out.push(b'\n');
            self.midline = false;
        }
        self.writer = Some(id);
        let mut rest = bytes;
        while !rest.is_empty() {
            let end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
            if !self.midline && impersonates(&rest[..end], name, names.clone()) {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b": ");
            }
            out.extend_from_slice(&rest[..end]);
            self.midline = rest[end - 1] != b'\n';
            rest = &rest[end..];
        }
        out
    }

    /// The kernel is about to write a line: true if a newline must come first (a task left its
    /// line unfinished). Afterwards the console is at a line start, written by the kernel.
    pub fn kernel_line(&mut self) -> bool {
        let open = self.midline;
        self.midline = false;
        self.writer = None;
        open
    }
}

/// `line` (from a line start; it ends with its newline if it is complete) starts, or could still
/// start, like a line of the kernel or of a program other than `own`.
fn impersonates<'a>(line: &[u8], own: &str, names: impl Iterator<Item = &'a str>) -> bool {
    let complete = line.ends_with(b"\n");
    // A reserved start `p` taken, or (for an unfinished line) still possible.
    let claims = |p: &[u8]| line.starts_with(p) || (!complete && p.starts_with(line));
    if KERNEL_STARTS.iter().any(|p| claims(p)) {
        return true;
    }
    let mut claimed = [0u8; 96];
    for other in names.filter(|n| *n != own) {
        for pre in CHECK_STARTS {
            let len = pre.len() + other.len() + 1;
            if len > claimed.len() {
                continue;
            }
            claimed[..pre.len()].copy_from_slice(pre);
            claimed[pre.len()..len - 1].copy_from_slice(other.as_bytes());
            claimed[len - 1] = b':';
            if claims(&claimed[..len]) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: TaskId = TaskId { index: 1, generation: 0 };
    const B: TaskId = TaskId { index: 2, generation: 0 };
    const NAMES: [&str; 4] = ["fstest", "fstest-kill", "wsh", "evil"];

    fn write(c: &mut ConsoleOut, id: TaskId, name: &str, bytes: &[u8]) -> std::string::String {
        std::string::String::from_utf8(c.task_write(id, name, NAMES.iter().copied(), bytes)).unwrap()
    }

    #[test]
    fn own_and_plain_lines_pass_unchanged() {
        let mut c = ConsoleOut::default();
        let lines = "fstest: ok\nCHECK PASS fstest: x\nCHECK FAIL fstest: y\nplain text\n  | indented\n";
        assert_eq!(write(&mut c, A, "fstest", lines.as_bytes()), lines);
        assert_eq!(write(&mut c, A, "wsh", b"wsh:/$ "), "wsh:/$ ", "the prompt is the shell's own");
        assert_eq!(write(&mut c, A, "wsh", b"ls\n"), "ls\n");
    }

    #[test]
    fn lines_that_start_like_someone_elses_are_marked() {
        let mut c = ConsoleOut::default();
        assert_eq!(
            write(&mut c, A, "evil", b"[kernel] forged\nKERNEL PANIC\nCHECK PASS fstest: z\nfstest-kill: w\nok\n"),
            "evil: [kernel] forged\nevil: KERNEL PANIC\nevil: CHECK PASS fstest: z\nevil: fstest-kill: w\nok\n"
        );
        assert_eq!(write(&mut c, A, "fstest", b"fstest-kill: q\n"), "fstest: fstest-kill: q\n");
        assert_eq!(write(&mut c, A, "evil", b"fstestx: not a name\n"), "fstestx: not a name\n");
    }

    #[test]
    fn a_line_written_in_pieces_cannot_dodge_the_mark() {
        let mut c = ConsoleOut::default();
        assert_eq!(write(&mut c, A, "evil", b"CHEC"), "evil: CHEC", "could still become a CHECK line");
        assert_eq!(write(&mut c, A, "evil", b"K PASS fstest: x\n"), "K PASS fstest: x\n");
        assert_eq!(write(&mut c, A, "evil", b"fs"), "evil: fs");
        assert_eq!(write(&mut c, A, "evil", b"test: y\n"), "test: y\n");
        assert_eq!(write(&mut c, A, "evil", b"hello"), "hello", "cannot become a reserved start");
        assert_eq!(write(&mut c, A, "evil", b" [kernel]\n"), " [kernel]\n");
    }

    #[test]
    fn an_unfinished_line_continues_only_for_its_writer() {
        let mut c = ConsoleOut::default();
        assert_eq!(write(&mut c, A, "wsh", b"wsh:/$ "), "wsh:/$ ");
        assert_eq!(write(&mut c, B, "evil", b"[kernel] forged\n"), "\nevil: [kernel] forged\n");
        assert_eq!(write(&mut c, A, "wsh", b"x"), "x");
        assert!(c.kernel_line(), "the kernel ends the task's line before its own");
        assert_eq!(write(&mut c, A, "wsh", b"[kernel] after\n"), "wsh: [kernel] after\n");
        assert!(!c.kernel_line());
        assert_eq!(write(&mut c, A, "wsh", b""), "");
    }
}
