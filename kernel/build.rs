//! Link arguments for the bare-metal kernel: our own linker script, static, non-PIE, no build id.
//! The kernel's target (`x86_64-unknown-none`) links with rust-lld directly, so these are
//! linker flags, not C compiler driver flags.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    for arg in ["-static", "--no-pie", "-zmax-page-size=4096", "--build-id=none"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rerun-if-changed=linker.ld");
}
