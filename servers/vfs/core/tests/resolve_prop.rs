//! Property test of path resolution: any path made of names, `.`, `..` and extra slashes resolves to
//! what a walk of the known tree says, across a mount in both directions.

mod common;

use common::*;
use proptest::prelude::*;
use protocol::fs::{FileSystem, SetAttr};
use protocol::Error;

/// Directories that exist (the one at /a/b is a mount point; /a/b/c lives in the mounted filesystem,
/// and the covered /a/b/hidden must be unreachable).
const DIRS: [&str; 6] = ["/", "/a", "/a/b", "/a/b/c", "/b", "/b/a"];

fn model(parts: &[&str]) -> Option<String> {
    let mut cur: Vec<&str> = Vec::new();
    for &p in parts {
        match p {
            "" | "." => {}
            ".." => {
                cur.pop();
            }
            name => {
                cur.push(name);
                let path = format!("/{}", cur.join("/"));
                if !DIRS.contains(&path.as_str()) {
                    return None;
                }
            }
        }
    }
    Some(format!("/{}", cur.join("/")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn resolution_matches_a_walk_of_the_tree(parts in proptest::collection::vec(
        prop_oneof![Just("a"), Just("b"), Just("c"), Just("hidden"), Just("."), Just(".."), Just("")], 0..10)) {
        let (mut v, _) = setup();
        v.mkdir("/a", 0o755).unwrap();
        v.mkdir("/a/b", 0o755).unwrap();
        v.mkdir("/a/b/hidden", 0o755).unwrap();
        v.mkdir("/b", 0o755).unwrap();
        v.mkdir("/b/a", 0o755).unwrap();
        // Give the mounted root a mode of its own so it cannot be mistaken for any directory of `/`
        // (both filesystems number their roots 1).
        let other = Shared::new();
        let root = other.fs.borrow().root();
        other.fs.borrow_mut().setattr(root, SetAttr { mode: Some(0o700), ..SetAttr::default() }).unwrap();
        v.mount("/a/b", other.boxed()).unwrap();
        v.mkdir("/a/b/c", 0o755).unwrap();
        let path = format!("/{}", parts.join("/"));
        match model(&parts) {
            Some(canonical) => {
                let got = v.stat(&path).unwrap();
                let want = v.stat(&canonical).unwrap();
                prop_assert_eq!(got, want, "{} vs {}", path, canonical);
                prop_assert_eq!(v.mount_of(&canonical).unwrap(), usize::from(canonical.starts_with("/a/b")));
            }
            None => prop_assert_eq!(v.stat(&path), Err(Error::NotFound), "{}", path),
        }
    }
}
