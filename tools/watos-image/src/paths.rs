//! Path-level operations over any [`FileSystem`]: what `ls`, `cat`, `put`, `get`, `mkdir` and `rm` do.
//!
//! Design: paths are resolved one component at a time with `lookup`, like the VFS does, without
//! following symbolic links (the tool acts on the link itself, as `lstat` would). Errors are strings
//! that name the path and say what went wrong, because they end up in front of a person.

use std::io::{Read, Write};

use protocol::fs::{DirEntry, FileSystem, FileType, NewNode, NodeId, SetAttr, Stat};
use protocol::Error;

/// A failure explained for a person.
pub type ToolResult<T> = Result<T, String>;

/// Bytes moved per read or write call: big enough to amortise per-call costs, small enough to stream.
const IO_CHUNK: usize = 1 << 20;

fn describe(path: &str, e: Error) -> String {
    let what = match e {
        Error::NotFound => "no such file or directory".to_string(),
        Error::AlreadyExists => "already exists".to_string(),
        Error::NotADirectory => "not a directory".to_string(),
        Error::IsADirectory => "is a directory".to_string(),
        Error::DirectoryNotEmpty => "directory not empty".to_string(),
        Error::NoSpace => "no space left on the image".to_string(),
        Error::NameTooLong => "name too long for this filesystem".to_string(),
        Error::NotSupported => "not supported by this filesystem".to_string(),
        other => other.to_string(),
    };
    format!("{path}: {what}")
}

/// The components of an image path; leading, trailing and doubled slashes and `.` are ignored.
fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// Find the node `path` names (absolute or relative to the root; `..` goes up).
pub fn resolve<F: FileSystem + ?Sized>(fs: &mut F, path: &str) -> ToolResult<Stat> {
    let mut stack: Vec<NodeId> = vec![fs.root()];
    let mut st = fs.getattr(fs.root()).map_err(|e| describe("/", e))?;
    for comp in components(path) {
        if comp == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            let top = *stack.last().unwrap_or(&fs.root());
            st = fs.getattr(top).map_err(|e| describe(path, e))?;
            continue;
        }
        st = fs.lookup(st.ino, comp).map_err(|e| describe(path, e))?;
        stack.push(st.ino);
    }
    Ok(st)
}

/// The directory that will hold `path`'s last component, and that component.
pub fn parent_of<F: FileSystem + ?Sized>(fs: &mut F, path: &str) -> ToolResult<(NodeId, String)> {
    let trimmed = path.trim_end_matches('/');
    let (dir, name) = match trimmed.rfind('/') {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => ("", trimmed),
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("{path}: needs a file name, not the root or a dot entry"));
    }
    let parent = resolve(fs, dir)?;
    if parent.kind != FileType::Directory {
        return Err(describe(dir, Error::NotADirectory));
    }
    Ok((parent.ino, name.to_string()))
}

/// Every entry of directory `dir`, following readdir cookies to the end.
pub fn read_dir_all<F: FileSystem + ?Sized>(fs: &mut F, dir: NodeId) -> Result<Vec<DirEntry>, Error> {
    let mut out: Vec<DirEntry> = Vec::new();
    let mut cookie = 0;
    loop {
        let page = fs.readdir(dir, cookie, 256)?;
        match page.last() {
            Some(last) => cookie = last.next_cookie,
            None => return Ok(out),
        }
        out.extend(page);
    }
}

/// One line of `ls` output: type and permissions, links, owner, size, name (and a symlink's target).
pub fn format_entry(name: &str, st: &Stat, target: Option<&str>) -> String {
    let t = match st.kind {
        FileType::File => '-',
        FileType::Directory => 'd',
        FileType::Symlink => 'l',
        FileType::Fifo => 'p',
        FileType::Socket => 's',
        FileType::CharDevice => 'c',
        FileType::BlockDevice => 'b',
    };
    let mut perms = String::with_capacity(9);
    for shift in [6u32, 3, 0] {
        let bits = (st.mode >> shift) & 7;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        perms.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let mut line = format!("{t}{perms} {:>3} {:>5} {:>5} {:>10} {name}", st.nlink, st.uid, st.gid, st.size);
    if let Some(target) = target {
        line.push_str(" -> ");
        line.push_str(target);
    }
    line
}

/// `ls`: the entries of a directory (sorted by name), or the one line for a non-directory.
pub fn list<F: FileSystem + ?Sized>(fs: &mut F, path: &str) -> ToolResult<Vec<String>> {
    let st = resolve(fs, path)?;
    let mut entries: Vec<(String, NodeId)> = if st.kind == FileType::Directory {
        let all = read_dir_all(fs, st.ino).map_err(|e| describe(path, e))?;
        all.into_iter().map(|e| (e.name, e.ino)).collect()
    } else {
        let name = components(path).last().unwrap_or("/").to_string();
        vec![(name, st.ino)]
    };
    entries.sort();
    let mut lines = Vec::with_capacity(entries.len());
    for (name, ino) in entries {
        let st = fs.getattr(ino).map_err(|e| describe(&name, e))?;
        let target = if st.kind == FileType::Symlink { fs.readlink(ino).ok() } else { None };
        lines.push(format_entry(&name, &st, target.as_deref()));
    }
    Ok(lines)
}

/// `cat`/`get`: copy a file's contents to `out`; returns the number of bytes.
pub fn read_file<F: FileSystem + ?Sized>(fs: &mut F, path: &str, out: &mut dyn Write) -> ToolResult<u64> {
    let st = resolve(fs, path)?;
    match st.kind {
        FileType::File => {}
        FileType::Directory => return Err(describe(path, Error::IsADirectory)),
        _ => return Err(format!("{path}: not a regular file")),
    }
    let mut buf = vec![0u8; IO_CHUNK];
    let mut offset = 0u64;
    loop {
        let n = fs.read(st.ino, offset, &mut buf).map_err(|e| describe(path, e))?;
        if n == 0 {
            return Ok(offset);
        }
        out.write_all(&buf[..n]).map_err(|e| format!("writing {path}'s contents: {e}"))?;
        offset += n as u64;
    }
}

/// `put`: store everything `input` yields as file `path` (replacing its contents if it exists; into
/// the directory if `path` names one, under `default_name`). Returns the bytes written.
pub fn write_file<F: FileSystem + ?Sized>(
    fs: &mut F,
    path: &str,
    default_name: &str,
    mode: u32,
    input: &mut dyn Read,
) -> ToolResult<u64> {
    let (dir, name) = match resolve(fs, path) {
        Ok(st) if st.kind == FileType::Directory => (st.ino, default_name.to_string()),
        _ => parent_of(fs, path)?,
    };
    let shown = format!("{}/{name}", path.trim_end_matches('/'));
    let ino = match fs.lookup(dir, &name) {
        Ok(st) if st.kind == FileType::File => {
            fs.setattr(st.ino, SetAttr { size: Some(0), ..Default::default() }).map_err(|e| describe(&shown, e))?;
            st.ino
        }
        Ok(_) => return Err(format!("{shown}: exists and is not a regular file")),
        Err(Error::NotFound) => {
            let node = NewNode::new(FileType::File, mode & 0o7777);
            fs.create(dir, &name, &node).map_err(|e| describe(&shown, e))?.ino
        }
        Err(e) => return Err(describe(&shown, e)),
    };
    let mut buf = vec![0u8; IO_CHUNK];
    let mut offset = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(|e| format!("reading input for {shown}: {e}"))?;
        if n == 0 {
            return Ok(offset);
        }
        fs.write(ino, offset, &buf[..n]).map_err(|e| describe(&shown, e))?;
        offset += n as u64;
    }
}

/// `mkdir` (with `parents`, also every missing ancestor, and no error if it exists).
pub fn make_dir<F: FileSystem + ?Sized>(fs: &mut F, path: &str, parents: bool) -> ToolResult<()> {
    if !parents {
        let (dir, name) = parent_of(fs, path)?;
        fs.create(dir, &name, &NewNode::new(FileType::Directory, 0o755)).map_err(|e| describe(path, e))?;
        return Ok(());
    }
    let mut cur = fs.root();
    for comp in components(path) {
        if comp == ".." {
            return Err(format!("{path}: `..` is not allowed with -p"));
        }
        cur = match fs.lookup(cur, comp) {
            Ok(st) if st.kind == FileType::Directory => st.ino,
            Ok(_) => return Err(describe(path, Error::NotADirectory)),
            Err(Error::NotFound) => {
                let node = NewNode::new(FileType::Directory, 0o755);
                fs.create(cur, comp, &node).map_err(|e| describe(path, e))?.ino
            }
            Err(e) => return Err(describe(path, e)),
        };
    }
    Ok(())
}

/// `rm`: remove a file, symlink, special file or empty directory; with `recursive`, a whole tree.
pub fn remove<F: FileSystem + ?Sized>(fs: &mut F, path: &str, recursive: bool) -> ToolResult<()> {
    let (dir, name) = parent_of(fs, path)?;
    let st = fs.lookup(dir, &name).map_err(|e| describe(path, e))?;
    if st.kind == FileType::Directory {
        if recursive {
            remove_tree(fs, st.ino, path)?;
        }
        fs.rmdir(dir, &name).map_err(|e| describe(path, e))
    } else {
        fs.unlink(dir, &name).map_err(|e| describe(path, e))
    }
}

fn remove_tree<F: FileSystem + ?Sized>(fs: &mut F, dir: NodeId, path: &str) -> ToolResult<()> {
    for entry in read_dir_all(fs, dir).map_err(|e| describe(path, e))? {
        let child = format!("{path}/{}", entry.name);
        if entry.kind == FileType::Directory {
            remove_tree(fs, entry.ino, &child)?;
            fs.rmdir(dir, &entry.name).map_err(|e| describe(&child, e))?;
        } else {
            fs.unlink(dir, &entry.name).map_err(|e| describe(&child, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use memfs::MemFs;

    fn put(fs: &mut MemFs, path: &str, data: &[u8]) {
        write_file(fs, path, "unused", 0o644, &mut &data[..]).unwrap();
    }

    fn get(fs: &mut MemFs, path: &str) -> Vec<u8> {
        let mut out = Vec::new();
        read_file(fs, path, &mut out).unwrap();
        out
    }

    #[test]
    fn put_get_round_trip_and_overwrite() {
        let mut fs = MemFs::default();
        let big: Vec<u8> = (0..3 * IO_CHUNK + 17).map(|i| (i % 251) as u8).collect();
        put(&mut fs, "/big.bin", &big);
        assert_eq!(get(&mut fs, "big.bin"), big);
        put(&mut fs, "/big.bin", b"short");
        assert_eq!(get(&mut fs, "/big.bin"), b"short", "overwrite truncates first");
    }

    #[test]
    fn put_into_directory_uses_default_name() {
        let mut fs = MemFs::default();
        make_dir(&mut fs, "/d", false).unwrap();
        write_file(&mut fs, "/d/", "host.txt", 0o600, &mut &b"x"[..]).unwrap();
        assert_eq!(get(&mut fs, "/d/host.txt"), b"x");
        assert_eq!(resolve(&mut fs, "/d/host.txt").unwrap().mode, 0o600);
    }

    #[test]
    fn resolve_handles_dots_and_slashes() {
        let mut fs = MemFs::default();
        make_dir(&mut fs, "/a/b/c", true).unwrap();
        let c = resolve(&mut fs, "/a/b/c").unwrap().ino;
        assert_eq!(resolve(&mut fs, "//a/./b/../b/c/").unwrap().ino, c);
        assert_eq!(resolve(&mut fs, "/../..").unwrap().ino, fs.root());
        assert!(resolve(&mut fs, "/a/missing").unwrap_err().contains("no such file"));
    }

    #[test]
    fn mkdir_without_parents_needs_the_parent() {
        let mut fs = MemFs::default();
        assert!(make_dir(&mut fs, "/x/y", false).unwrap_err().contains("/x: no such file"));
        make_dir(&mut fs, "/x", false).unwrap();
        assert!(make_dir(&mut fs, "/x", false).unwrap_err().contains("already exists"));
        make_dir(&mut fs, "/x/y", true).unwrap();
        make_dir(&mut fs, "/x/y", true).unwrap();
        put(&mut fs, "/x/f", b"");
        assert!(make_dir(&mut fs, "/x/f/g", true).unwrap_err().contains("not a directory"));
    }

    #[test]
    fn ls_lists_sorted_with_details() {
        let mut fs = MemFs::default();
        put(&mut fs, "/zeta", b"12345");
        make_dir(&mut fs, "/alpha", false).unwrap();
        let lines = list(&mut fs, "/").unwrap();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("drwxr-xr-x") && lines[0].ends_with(" alpha"), "{}", lines[0]);
        assert!(lines[1].starts_with("-rw-r--r--") && lines[1].ends_with("5 zeta"), "{}", lines[1]);
        assert_eq!(list(&mut fs, "/zeta").unwrap().len(), 1);
    }

    #[test]
    fn rm_file_dir_and_tree() {
        let mut fs = MemFs::default();
        make_dir(&mut fs, "/t/u", true).unwrap();
        put(&mut fs, "/t/u/f", b"data");
        put(&mut fs, "/t/g", b"data");
        assert!(remove(&mut fs, "/t", false).unwrap_err().contains("not empty"));
        remove(&mut fs, "/t/g", false).unwrap();
        remove(&mut fs, "/t", true).unwrap();
        assert!(list(&mut fs, "/").unwrap().is_empty());
        assert_eq!(fs.node_count(), 1);
        assert!(remove(&mut fs, "/", true).is_err(), "the root cannot be removed");
    }

    #[test]
    fn cat_of_directory_is_an_error() {
        let mut fs = MemFs::default();
        assert!(read_file(&mut fs, "/", &mut Vec::new()).unwrap_err().contains("is a directory"));
    }

    #[test]
    fn format_entry_shows_symlink_target() {
        let mut fs = MemFs::default();
        let mut n = NewNode::new(FileType::Symlink, 0o777);
        n.symlink_target = "target".into();
        fs.create(fs.root(), "ln", &n).unwrap();
        let lines = list(&mut fs, "/").unwrap();
        assert!(lines[0].starts_with("lrwxrwxrwx") && lines[0].ends_with("ln -> target"), "{}", lines[0]);
    }
}
