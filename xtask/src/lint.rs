//! `cargo xtask lint`: the tree's hygiene checks, run by CI before the tests.
//!
//! Design: rustfmt over every crate, then clippy with warnings denied twice, because the workspace
//! holds two builds that cannot share one cargo invocation: the host crates (`cargo test`'s default
//! members, all targets) and the bare-metal binaries (their own target, flags and target dir, see
//! `watos::bare_metal_cargo`). A plain `cargo clippy --workspace` would unify `libwatos/rt` into the
//! host test builds and fail on two panic handlers.

use crate::{cargo, watos};

pub fn run() -> bool {
    let steps: [(&str, &dyn Fn() -> bool); 3] = [
        ("cargo fmt --all --check", &|| cargo(&["fmt", "--all", "--check"])),
        ("clippy: host crates", &|| cargo(&["clippy", "--all-targets", "--", "-D", "warnings"])),
        ("clippy: bare-metal binaries", &|| {
            watos::run_bare_metal(watos::bare_metal_cargo("clippy"), &["--", "-D", "warnings"])
        }),
    ];
    let mut ok = true;
    for (name, step) in steps {
        println!("== lint: {name}");
        if !step() {
            eprintln!("lint failed: {name}");
            ok = false;
        }
    }
    ok
}
