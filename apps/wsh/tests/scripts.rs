//! Scripts run against the whole stack (WFS at /, FAT at /fat, memfs at /mem) with expected output.

use core::fmt::Write;

use protocol::api::supervisor;
use protocol::local::LocalIpc;
use watos_fs::Fs;
use watos_stack::{Stack, StackConfig};
use wsh::{CmdError, Hooks, ScriptOutcome, Shell, Status};

/// What the WATOS binary does with its supervisor and cache clients, done on the host stack: `ps`,
/// `kill` and `restart` go to the supervisor model over the same interface init serves.
struct StackHooks<'a> {
    s: &'a Stack,
    sup: supervisor::Client<LocalIpc>,
}

impl Hooks for StackHooks<'_> {
    fn mounts(&self) -> Vec<String> {
        ["/", "/fat", "/mem"].map(String::from).to_vec()
    }
    fn ps(&mut self, out: &mut dyn Write) -> Result<(), CmdError> {
        for t in self.sup.list_tasks()? {
            let state = if t.id.is_some() { "up" } else { "dead" };
            writeln!(out, "{:<10} {state:<5} restarts {}", t.name.as_str(), t.restarts)?;
        }
        Ok(())
    }
    fn kill(&mut self, task: &str, _out: &mut dyn Write) -> Result<(), CmdError> {
        Ok(self.sup.kill_task(task)?)
    }
    fn restart(&mut self, task: &str, out: &mut dyn Write) -> Result<(), CmdError> {
        let id = self.sup.restart_task(task)?;
        Ok(writeln!(out, "{task} restarted (generation {})", id.generation)?)
    }
    fn stats(&mut self, out: &mut dyn Write) -> Result<(), CmdError> {
        let c = self.s.cache_client("wfs-cache")?.stats()?;
        Ok(writeln!(out, "wfs-cache: hits {} misses {}", c.hits, c.misses)?)
    }
}

fn stack() -> Stack {
    Stack::new(StackConfig::default()).unwrap()
}

fn shell(s: &Stack) -> Shell<LocalIpc, String, StackHooks<'_>> {
    let app = s.app("wsh").unwrap();
    let sup = s.supervisor(&app).unwrap();
    Shell::new(Fs::new(app.vfs), String::new(), StackHooks { s, sup })
}

fn run(sh: &mut Shell<LocalIpc, String, StackHooks<'_>>, script: &str, stop: bool) -> (String, ScriptOutcome) {
    let o = sh.run_script(script, stop);
    (core::mem::take(&mut sh.out), o)
}

#[test]
fn file_commands_script_on_every_mount() {
    let s = stack();
    let mut sh = shell(&s);
    let script = r#"
# a demo: files on WFS, FAT and memfs
mkdir /docs
echo hello world > /docs/a.txt
echo "second  line" >> /docs/a.txt
cat /docs/a.txt
cp /docs/a.txt /fat
cp /docs/a.txt /mem/copy.txt
mv /fat/a.txt /fat/Long File Name.txt
mv '/fat/a.txt' "/fat/Long File Name.txt"
ls /fat /mem
cd /docs
echo -n no newline > b.txt
cat b.txt
echo
ls -l
rm a.txt ../docs/b.txt
ls
cd ..
pwd
rmdir docs
mkdir -p /mem/x/y/z
mkdir -p /mem/x/y
ls /mem/x
"#;
    let (out, o) = run(&mut sh, script, false);
    let expect = "\
hello world
second  line
wsh: mv: usage: mv src dst
/fat:
Long File Name.txt

/mem:
copy.txt
no newline
-rw-r--r--         25 a.txt
-rw-r--r--         10 b.txt
/
y
";
    assert_eq!(out, expect);
    assert_eq!(o, ScriptOutcome { ran: 22, failed: 1, stopped: false });
    assert_eq!(sh.fs().read("/fat/Long File Name.txt").unwrap(), b"hello world\nsecond  line\n");
    assert!(!sh.fs().exists("/docs").unwrap());
}

#[test]
fn snapshot_and_scrub_commands_on_wfs_and_fat() {
    let s = stack();
    let mut sh = shell(&s);
    let script = r#"
echo one > /f.txt
snapshot create before
echo two > /f.txt
cd /fat
snapshot create also /
snapshot list
snapshot delete also /
snapshot list /
scrub
scrub .
scrub /mem
snapshot list .
snapshot delete before
snapshot delete before
"#;
    let (out, o) = run(&mut sh, script, false);
    let lines: Vec<&str> = out.lines().collect();
    let want_start = [
        "snapshot before of / created",
        "snapshot also of / created",
        "2 snapshots of /",
        "  before  txid ",
        "  also  txid ",
        "snapshot also of / deleted",
        "1 snapshots of /",
        "  before  txid ",
        "scrub /: ",
        "scrub /: clean",
        // The current directory is /fat: FAT has neither scrub nor snapshots.
        "wsh: scrub: /fat: operation not supported",
        "wsh: scrub: /mem: operation not supported",
        "wsh: snapshot: /fat: operation not supported",
        "snapshot before of / deleted",
        "wsh: snapshot: /: not found",
    ];
    assert_eq!(lines.len(), want_start.len(), "{out}");
    for (l, w) in lines.iter().zip(want_start) {
        assert!(l.starts_with(w), "{l:?} should start with {w:?} in\n{out}");
    }
    assert!(lines[8].contains(" metadata copies checked, 0 repaired; "), "{}", lines[8]);
    assert_eq!(o, ScriptOutcome { ran: 14, failed: 4, stopped: false });
}

#[test]
fn every_error_is_one_clear_line() {
    let s = stack();
    let mut sh = shell(&s);
    let script = r#"
cat /x
ls /nope
mkdir /d
mkdir /d
echo data > /d/f
rmdir /d
rm /d
cd /d/f
cp /missing /d
mv /d/f /fat/f
cat
kill
frobnicate
echo 'unterminated
echo x >
echo x > /no/such/dir/file
snapshot create s1 /fat
snapshot rename s1
mkdir -q /e
"#;
    let (out, o) = run(&mut sh, script, false);
    let expect = "\
wsh: cat: /x: not found
wsh: ls: /nope: not found
wsh: mkdir: /d: already exists
wsh: rmdir: /d: directory not empty
wsh: rm: /d: is a directory
wsh: cd: /d/f: not a directory
wsh: cp: /missing: not found
wsh: mv: /d/f: cross-device link
wsh: cat: usage: cat path...
wsh: kill: usage: kill task
wsh: frobnicate: command not found (try help)
wsh: syntax error: unterminated quote
wsh: syntax error: missing file name after redirection
wsh: echo: /no/such/dir/file: not found
wsh: snapshot: /fat: operation not supported
wsh: snapshot: usage: snapshot create|delete NAME [MOUNT] | snapshot list [MOUNT]
wsh: mkdir: usage: mkdir [-p] dir...
";
    assert_eq!(out, expect);
    assert_eq!(o.failed, 17);
    // The failed redirection left nothing behind, and the failed `cat` wrote nothing.
    assert!(!sh.fs().exists("/no").unwrap());
}

#[test]
fn stop_on_error_and_exit_end_a_script() {
    let s = stack();
    let mut sh = shell(&s);
    let (out, o) = run(&mut sh, "echo one\ncat /missing\necho two\n", true);
    assert_eq!(out, "one\nwsh: cat: /missing: not found\n");
    assert_eq!(o, ScriptOutcome { ran: 2, failed: 1, stopped: true });
    let (out, o) = run(&mut sh, "echo one\nexit\necho two\n", false);
    assert_eq!(out, "one\n");
    assert!(o.stopped);
    assert_eq!(sh.run_line("exit"), Status::Exit);
    assert_eq!(sh.run_line("   "), Status::Ok);
    assert_eq!(sh.run_line("cat /nope"), Status::Failed);
}

#[test]
fn a_script_file_runs_from_the_filesystem() {
    let s = stack();
    let mut sh = shell(&s);
    sh.fs().write("/mem/demo.wsh", b"echo from a file > /mem/out\ncat /mem/out\n").unwrap();
    let o = sh.run_file("/mem/demo.wsh", true).unwrap();
    assert_eq!(o, ScriptOutcome { ran: 2, failed: 0, stopped: false });
    assert_eq!(sh.out, "from a file\n");
    assert!(matches!(sh.run_file("/mem/none.wsh", true), Err(CmdError::Fs { .. })));
}

#[test]
fn stat_df_sync_stats_and_help() {
    let s = stack();
    let mut sh = shell(&s);
    let (out, _) = run(&mut sh, "echo abc > /f\nstat /f /fat\n", true);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "  File: /f");
    assert_eq!(lines[1], "  Type: regular file  Size: 4  Blocks: 8");
    assert!(lines[2].ends_with("Mode: 0644 (-rw-r--r--)"), "{}", lines[2]);
    assert_eq!(lines[3], "Modify: 1700000000.000000000");
    assert_eq!(lines[4], "  File: /fat");
    assert!(lines[5].starts_with("  Type: directory"));

    let (out, o) = run(&mut sh, "df\n", true);
    assert_eq!(o.failed, 0, "{out}");
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 4, "{out}");
    assert!(rows[0].starts_with("Mounted on"));
    for (row, m) in rows[1..].iter().zip(["/ ", "/fat ", "/mem "]) {
        assert!(row.starts_with(m), "{row}");
    }

    let (out, o) = run(&mut sh, "sync\nsync /fat\nstats\n", true);
    assert_eq!(o.failed, 0, "{out}");
    assert!(out.contains("vfs: opens ") && out.contains("wfs-cache: hits "), "{out}");
    // The stack's vfs has no clock: the latencies are in ticks (0), counted by kind.
    assert!(out.lines().any(|l| l.starts_with("vfs latency write: ") && l.ends_with(" ticks")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("vfs latency stat: ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("vfs errors by kind: ")), "{out}");
    let (out, _) = run(&mut sh, "help\n", true);
    for cmd in [
        "ls", "cat", "echo", "cp", "mv", "rm", "mkdir", "rmdir", "stat", "df", "sync", "snapshot", "scrub", "stats",
        "ps", "kill", "restart",
    ] {
        assert!(out.contains(&format!("\n  {cmd}")), "help lacks {cmd}");
    }
}

#[test]
fn ps_kill_and_restart_through_hooks_and_the_shell_keeps_working() {
    let s = stack();
    let mut sh = shell(&s);
    let (out, _) = run(&mut sh, "echo durable > /keep\nsync\nps\n", true);
    assert!(out.lines().any(|l| l.contains("vfs") && l.contains("up")), "{out}");
    // Restarting the vfs under the shell: its next commands re-connect transparently.
    let (out, o) = run(&mut sh, "restart vfs\ncat /keep\nrestart wfs\ncat /keep\nls /fat\n", true);
    assert_eq!(o.failed, 0, "{out}");
    // Each restart ends the old task (one generation) and starts the new one (the next).
    assert_eq!(out, "vfs restarted (generation 3)\ndurable\nwfs restarted (generation 3)\ndurable\n");
    // A kill through the supervisor: the service is back at once, and counted.
    let (out, _) = run(&mut sh, "kill fat\nls /fat\nls /fat\nps\n", false);
    assert!(out.lines().any(|l| l.starts_with("fat ") && l.contains("up") && l.ends_with("restarts 1")), "{out}");
    let (out, _) = run(&mut sh, "restart nosuch\nkill wsh\n", false);
    assert_eq!(out, "wsh: restart: not found\nwsh: kill: permission denied\n", "the shell is no service");
}

#[test]
fn a_failing_command_does_not_truncate_its_redirection_target() {
    let s = stack();
    let mut sh = shell(&s);
    let (out, _) = run(&mut sh, "echo keep me > /mem/t\ncat /missing > /mem/t\nls /mem >> /mem/t\ncat /mem/t\n", false);
    assert_eq!(out, "wsh: cat: /missing: not found\nkeep me\nt\n");
}
