//! `watos-image`: see the library's `cli` module for the commands.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::ExitCode::from(watos_image::cli::run(&args))
}
