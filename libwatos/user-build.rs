//! Build script shared by every WATOS program (each one's Cargo.toml points `build` at this file):
//! links the program with libwatos's user linker script (path published by libwatos's build script).
fn main() {
    let script = std::env::var("DEP_WATOS_LDSCRIPT").expect("libwatos publishes its linker script");
    for arg in ["-nostartfiles", "-nostdlib", "-static", "-no-pie", "-Wl,-z,max-page-size=4096", "-Wl,--build-id=none"]
    {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins=-T{script}");
}
