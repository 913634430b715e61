//! Links the WATOS program (feature `watos`) with libwatos's user linker script, like
//! `libwatos/user-build.rs`; without the feature (host tests of the library) there is nothing to link.
fn main() {
    if std::env::var_os("CARGO_FEATURE_WATOS").is_none() {
        return;
    }
    let script = std::env::var("DEP_WATOS_LDSCRIPT").expect("libwatos publishes its linker script");
    for arg in ["-nostartfiles", "-nostdlib", "-static", "-no-pie", "-Wl,-z,max-page-size=4096", "-Wl,--build-id=none"]
    {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins=-T{script}");
}
