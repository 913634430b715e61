//! Publishes the user linker script's path to the apps' build scripts (as DEP_WATOS_LDSCRIPT).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:ldscript={dir}/user.ld");
    println!("cargo:rerun-if-changed=user.ld");
}
