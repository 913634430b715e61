//! Link arguments for the bare-metal kernel: our own linker script, no C runtime, static, non-PIE.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    for arg in ["-nostartfiles", "-nostdlib", "-static", "-no-pie", "-Wl,-z,max-page-size=4096", "-Wl,--build-id=none"]
    {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rerun-if-changed=linker.ld");
}
